#!/usr/bin/env bash
# The runtime image's premise, checked without a container engine: the binary runs from
# a root filesystem holding only itself, the shared libraries `ldd` names (glibc's and
# libgcc_s, which distroless/cc ships), CA certificates and a passwd entry for 65532, and
# no shell. It serves /healthz and /readyz as user 65532, and `simrenew healthcheck`
# (the Dockerfile's HEALTHCHECK) passes inside it.
# Usage: ci/operations/runtime_root.sh path/to/simrenew
set -euo pipefail
binary="$(readlink -f "$1")"
root="$(mktemp -d)"
chmod 755 "$root"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

allowed='^(linux-vdso|libc\.so|libm\.so|libgcc_s\.so|ld-linux|libpthread|libdl|librt)'
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/var/lib/simrenew" "$root/tmp"
cp "$binary" "$root/usr/local/bin/simrenew"
while read -r name _ path _; do
  if ! [[ "$(basename "$name")" =~ $allowed ]]; then
    echo "runtime root: the binary needs $name, which distroless/cc does not have" >&2
    exit 1
  fi
  # `ld-linux…` is listed by its own path; the others after `=>`.
  lib="${path:-$name}"
  [ -f "$lib" ] || lib="$name"
  [ -f "$lib" ] && { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
done < <(ldd "$binary" | grep -v 'linux-vdso')
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/" 2>/dev/null || true
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$root/etc/passwd"
echo 'nonroot:x:65532:' > "$root/etc/group"
chown 65532:65532 "$root/var/lib/simrenew" "$root/tmp"
for shell in sh bash dash; do
  if find "$root" -name "$shell" | grep -q .; then
    echo "runtime root: found a shell ($shell)" >&2
    exit 1
  fi
done
echo "runtime root: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1), no shell"

chroot="$(command -v chroot)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i SIMRENEW_BIND="127.0.0.1:$port" SIMRENEW_LOG_FORMAT=json \
  DATABASE_URL=sqlite:///var/lib/simrenew/simrenew.db \
  "$chroot" --userspec=65532:65532 "$root" /usr/local/bin/simrenew serve >"$root.log" 2>&1 &
server=$!
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$root.log" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
env -i "$chroot" --userspec=65532:65532 "$root" /usr/local/bin/simrenew healthcheck \
  --url "http://127.0.0.1:$port/healthz"
grep -q '"level":"INFO"' "$root.log" || { cat "$root.log" >&2; exit 1; }
rm -f "$root.log"
echo "runtime root: served /healthz and /readyz as 65532 with JSON logs; healthcheck passed"

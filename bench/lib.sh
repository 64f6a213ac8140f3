# Shared by the bench/*.sh scripts: build, start a release server, get a token, run wrk.
# Load is sent only to 127.0.0.1; every run is bounded by DURATION.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/simrenew-target}"
# BIN=/path/to/an/older/simrenew measures that build instead (nothing is built then).
BIN="${BIN:-$CARGO_TARGET_DIR/release/simrenew}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18181}"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
# SERVER_PID: the server started last; SERVER_PIDS: every server running.
SERVER_PID=""
SERVER_PIDS=()

cleanup() {
  stop_server
  if [ -n "${REFERENCE_PID:-}" ]; then kill "$REFERENCE_PID" 2>/dev/null || true; wait "$REFERENCE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

need_wrk() {
  command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
}

build_release() {
  if [ "$BIN" = "$CARGO_TARGET_DIR/release/simrenew" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin simrenew --examples)
  fi
}

# The same-machine references (examples/ceiling_*.rs), built by build_release.
CEILING_JSON="$CARGO_TARGET_DIR/release/examples/ceiling_json"
CEILING_PK="$CARGO_TARGET_DIR/release/examples/ceiling_pk"
REFERENCE_PORT="${REFERENCE_PORT:-18183}"
REFERENCE_BASE="http://127.0.0.1:$REFERENCE_PORT"
REFERENCE_PID=""

# start_reference PROGRAM ARGS…: starts a reference server on $REFERENCE_PORT and waits
# until it answers.
start_reference() {
  "$@" > "$WORK/reference.log" 2>&1 &
  REFERENCE_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$REFERENCE_BASE/" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$WORK/reference.log"; echo "reference server did not start" >&2; exit 1
}

stop_reference() {
  if [ -n "$REFERENCE_PID" ]; then kill "$REFERENCE_PID" 2>/dev/null || true; wait "$REFERENCE_PID" 2>/dev/null || true; fi
  REFERENCE_PID=""
}

# ratio_line LABEL NUMERATOR_KEY DENOMINATOR_KEY GOAL: prints the ratio of two measured
# req/s (keys as `measure` files them; the rounds of a key, `KEY__r1`, `KEY__r2`…, are
# added up) and whether it meets GOAL.
ratio_line() {
  python3 - "$WORK" "$@" <<'PY'
import sys, pathlib
work, label, top, bottom, goal = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
w = pathlib.Path(work)
def total(key):
    files = [w / f"{key}.rps"] if (w / f"{key}.rps").exists() else sorted(w.glob(f"{key}__r*.rps"))
    return sum(float(f.read_text()) for f in files)
ratio = total(top) / total(bottom)
print(f"ratio {label}: {ratio:.2f}  (goal >= {goal:g}: {'met' if ratio >= goal else 'NOT met'})")
PY
}

# ROUNDS: how many times each pair (reference, simrenew) is measured, alternating, so
# that a burst of noise on this shared machine falls on both.
ROUNDS="${ROUNDS:-2}"

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

# start_server [PORT]: serves $DATABASE_URL on PORT ($PORT by default) and waits until
# ready.
start_server() {
  local port="${1:-$PORT}"
  # The benchmarks measure the service's ceiling, not a partner's request quota (20/s by
  # default, which would turn nearly every request into a 429).
  SIMRENEW_LOG=warn SIMRENEW_RATE_LIMIT_PER_S="${SIMRENEW_RATE_LIMIT_PER_S:-100000}" \
    SIMRENEW_RATE_LIMIT_BURST="${SIMRENEW_RATE_LIMIT_BURST:-100000}" \
    "$BIN" serve --bind "127.0.0.1:$port" > "$WORK/server-$port.log" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/server-$port.log"; echo "server did not start" >&2; exit 1
}

# stop_server: stops every server start_server started.
stop_server() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
  SERVER_PID=""
}

# token SCOPES: creates a partner with SCOPES and prints an access token for it.
token() {
  local created client_id client_secret
  created="$("$BIN" partner create --name "bench $RANDOM" --scopes "$1" --json 2>/dev/null)"
  client_id="$(echo "$created" | json_field client_id)"
  client_secret="$(echo "$created" | json_field client_secret)"
  curl -fs -u "$client_id:$client_secret" -d grant_type=client_credentials "$BASE/v1/oauth/token" | json_field access_token
}

# measure_script NAME BASE_URL LUA_SCRIPT: as `measure`, with a wrk request script.
measure_script() {
  local name="$1" url="$2" script="$3" out key
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$url")"
  key="$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_')"
  echo "$out" > "$WORK/$key.wrk"
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "$name: non-2xx answers" >&2; exit 1; fi
  report_wrk "$name" "$out" "$key"
}

# report_wrk NAME WRK_OUTPUT KEY: prints "NAME req/s p50 p99", files req/s under KEY.
report_wrk() {
  local name="$1" out="$2" key="$3" rps p50 p99
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1 == "50%" {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}')"
  printf '%-40s %12s req/s   p50 %9s   p99 %9s\n' "$name" "$rps" "$p50" "$p99"
  echo "$rps" > "$WORK/$key.rps"
}

# measure NAME URL [header]: runs wrk, prints "NAME req/s p50 p99", keeps req/s in
# $WORK/<NAME with non-alphanumerics as _>.rps.
measure() {
  local name="$1" url="$2" header="${3:-}" out
  if [ -n "$header" ]; then
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$header" "$url")"
  else
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")"
  fi
  local key
  key="$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_')"
  echo "$out" > "$WORK/$key.wrk"
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "$name: non-2xx answers" >&2; exit 1; fi
  report_wrk "$name" "$out" "$key"
}

# startup_ms DATABASE_URL: milliseconds from starting `simrenew serve` on DATABASE_URL
# (migrations included) to its first 200 from /readyz; the server is stopped after.
startup_ms() {
  python3 - "$BIN" "$1" "$PORT" <<'PY'
import os, subprocess, sys, time, urllib.request
binary, url, port = sys.argv[1], sys.argv[2], sys.argv[3]
env = dict(os.environ, DATABASE_URL=url, SIMRENEW_LOG="warn")
started = time.monotonic()
server = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while time.monotonic() - started < 10:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as r:
                if r.status == 200:
                    print(f"{(time.monotonic() - started) * 1000:.0f}")
                    break
        except OSError:
            time.sleep(0.002)
    else:
        sys.exit("the server was not ready within 10 s")
finally:
    server.terminate()
    server.wait()
PY
}

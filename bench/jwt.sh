#!/usr/bin/env bash
# Token verification throughput on one core (signature, alg, kid, iss, aud, exp, nbf),
# for the default EdDSA and for HS256. RS256 needs a configured key and is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/simrenew-target}"
cargo run --release --quiet --example jwt_verify

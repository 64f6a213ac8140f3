#!/usr/bin/env bash
# Catalog throughput: authenticated GET /v1/plans next to plain GET /healthz on the same
# release server (SQLite by default; BENCH_DATABASE_URL=postgres://… for PostgreSQL).
# Usage: bench/catalog.sh   (DURATION=10s CONNECTIONS=32 THREADS=2 PORT=18181)
source "$(dirname "$0")/lib.sh"

need_wrk
build_release
export DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}"
"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null
start_server
TOKEN="$(token catalog:read)"

echo "simrenew catalog benchmark: wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores, database ${DATABASE_URL%%://*}"
measure "GET /healthz" "$BASE/healthz"
measure "GET /v1/plans?currency=CNY" "$BASE/v1/plans?currency=CNY" "Authorization: Bearer $TOKEN"
measure "GET /v1/plans (page 1)" "$BASE/v1/plans" "Authorization: Bearer $TOKEN"
python3 - "$WORK" <<'PY'
import sys, pathlib
w = pathlib.Path(sys.argv[1])
health = float((w / "GET__healthz.rps").read_text())
plans = float((w / "GET__v1_plans_currency_CNY.rps").read_text())
print(f"ratio plans/healthz: {plans / health:.2f}")
PY

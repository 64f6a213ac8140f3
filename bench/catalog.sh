#!/usr/bin/env bash
# Catalog throughput: authenticated GET /v1/plans on a release server (SQLite by
# default; BENCH_DATABASE_URL=postgres://… for PostgreSQL), next to the same-machine
# reference measured in the same run: examples/ceiling_json.rs, an actix-web handler
# answering the very same page bytes as a constant. Prints the ratio (goal >= 0.5).
# Also prints how long `serve` takes to be ready on an empty SQLite database.
# Usage: bench/catalog.sh   (DURATION=10s CONNECTIONS=32 THREADS=2 PORT=18181)
source "$(dirname "$0")/lib.sh"

need_wrk
build_release
echo "start-up on an empty SQLite database (migrations included) to the first ready /readyz: $(startup_ms "sqlite://$WORK/empty.db") ms (goal < 200)"

export DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}"
"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null
start_server
TOKEN="$(token catalog:read)"
curl -fs -H "Authorization: Bearer $TOKEN" "$BASE/v1/plans?currency=CNY" > "$WORK/page.json"
start_reference "$CEILING_JSON" "127.0.0.1:$REFERENCE_PORT" "$WORK/page.json"

echo "simrenew catalog benchmark: wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores, database ${DATABASE_URL%%://*}, page of $(wc -c < "$WORK/page.json") bytes"
for round in $(seq 1 "$ROUNDS"); do
  measure "reference: constant JSON  r$round" "$REFERENCE_BASE/v1/plans"
  measure "GET /v1/plans?currency=CNY  r$round" "$BASE/v1/plans?currency=CNY" "Authorization: Bearer $TOKEN"
done
measure "GET /v1/plans (page 1)" "$BASE/v1/plans" "Authorization: Bearer $TOKEN"
measure "GET /healthz" "$BASE/healthz"
ratio_line "GET /v1/plans?currency=CNY / constant JSON" GET__v1_plans_currency_CNY reference__constant_JSON 0.5

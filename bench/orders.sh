#!/usr/bin/env bash
# Wallet order creation on PostgreSQL with 16 concurrent clients (each request a new
# Idempotency-Key), next to `pgbench -b tpcb-like -c 16` on the same server.
# Usage: bench/orders.sh   (DURATION=10s CLIENTS=16 PG=postgres://postgres@127.0.0.1:5432)
source "$(dirname "$0")/lib.sh"

CLIENTS="${CLIENTS:-16}"
CONNECTIONS="$CLIENTS"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="simrenew_bench_orders"
PGBENCH_DB="simrenew_bench_pgbench"
need_wrk
command -v pgbench >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib; }
build_release
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
export DATABASE_URL="$PG/$DB_NAME"
"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null 2>&1
PARTNER_JSON="$("$BIN" partner create --name "bench buyer" --scopes "orders:write orders:read" --json 2>/dev/null)"
PARTNER_ID="$(echo "$PARTNER_JSON" | json_field partner_id)"
# A handful of cards, bought for again and again; funds for far more orders than a run makes.
python3 - "$WORK" <<'PY'
import sys
def valid(body):
    for d in range(10):
        s = body + str(d); t = 0
        for i, c in enumerate(reversed(s)):
            v = int(c)
            if i % 2: v = v * 2 - (9 if v * 2 > 9 else 0)
            t += v
        if t % 10 == 0: return s
with open(f"{sys.argv[1]}/cards.csv", "w") as f, open(f"{sys.argv[1]}/iccids.txt", "w") as ids:
    f.write("iccid,card_type,msisdn,eid\n")
    for n in range(64):
        iccid = valid(f"8986088{n:012d}"); f.write(f"{iccid},fm,,\n"); ids.write(iccid + "\n")
PY
"$BIN" cards import "$WORK/cards.csv" --partner "$PARTNER_ID" >/dev/null 2>&1
"$BIN" wallet credit --partner "$PARTNER_ID" --currency CNY --amount 900000000000 >/dev/null 2>&1
PLAN_ID="$(psql "$DATABASE_URL" -Atc "SELECT id FROM plans WHERE code = 'CN-FM-M-10G'")"

start_server
TOKEN="$(curl -fs -u "$(echo "$PARTNER_JSON" | json_field client_id):$(echo "$PARTNER_JSON" | json_field client_secret)" \
  -d grant_type=client_credentials "$BASE/v1/oauth/token" | json_field access_token)"
cat > "$WORK/order.lua" <<LUA
local iccids = {}
for line in io.lines("$WORK/iccids.txt") do iccids[#iccids + 1] = line end
local counter = 0
local thread_id = 0
function setup(thread) thread_id = thread_id + 1; thread:set("tid", thread_id) end
request = function()
  counter = counter + 1
  local body = '{"iccid":"' .. iccids[(counter % #iccids) + 1] .. '","plan_id":"$PLAN_ID","currency":"CNY","payment_method":"wallet"}'
  return wrk.format("POST", "/v1/orders", {
    ["Authorization"] = "Bearer $TOKEN",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. tid .. "-" .. counter .. "-" .. os.time(),
  }, body)
end
LUA

echo "simrenew orders benchmark: wallet orders on PostgreSQL, $CLIENTS concurrent clients, $DURATION on $(nproc) cores"
out="$(wrk -t"$THREADS" -c"$CLIENTS" -d"$DURATION" --latency -s "$WORK/order.lua" "$BASE")"
if echo "$out" | grep -q "Non-2xx"; then echo "$out"; echo "non-2xx answers" >&2; exit 1; fi
rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
printf 'POST /v1/orders (wallet)      %s req/s   p50 %s   p99 %s\n' "$rps" \
  "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')"
psql "$DATABASE_URL" -Atc "SELECT 'orders written: ' || count(*) || ', ledger sum = balance: ' || ((SELECT sum(amount) FROM ledger_entries) = (SELECT sum(available) FROM wallet_balances)) FROM orders"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" -c "CREATE DATABASE $PGBENCH_DB"
pgbench -q -i -s 10 "$PG/$PGBENCH_DB" >/dev/null 2>&1
pg_out="$(pgbench -b tpcb-like -c "$CLIENTS" -j 2 -T "${DURATION%s}" "$PG/$PGBENCH_DB" 2>&1)"
pg_tps="$(echo "$pg_out" | awk -F'= ' '/^tps/ {print $2}' | awk '{print $1}' | head -1)"
echo "pgbench -b tpcb-like -c $CLIENTS   $pg_tps tps ($(echo "$pg_out" | awk '/latency average/ {print $0}'))"
python3 -c "print(f'ratio orders/pgbench: {float(\"$rps\") / float(\"$pg_tps\"):.2f}')"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"

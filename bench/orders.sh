#!/usr/bin/env bash
# Wallet order creation on PostgreSQL with 16 concurrent clients of one partner (each
# request a new Idempotency-Key), next to the same-machine reference measured in the same
# run: `pgbench -b tpcb-like -c 16 -j 2 -s 1` on the same server (its one branch row is
# what the partner's wallet row is to orders). Prints the ratio (goal >= 0.7), then the
# latency at half the rate reached (goal: p99 < 20 ms), the server's peak RSS under the
# load (goal < 64 MB), and checks the ledger against the balance.
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
python3 "$ROOT/bench/cards_csv.py" --out "$WORK/cards.csv" --prefix 8986088 --count 64 --ids "$WORK/iccids.txt"
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

# peak_rss_mb PID: samples the process's resident memory every 100 ms until it or the
# load (wrk) ends; prints the highest in MB.
peak_rss_sampler() {
  local pid="$1" out="$2" peak=0 rss
  while kill -0 "$pid" 2>/dev/null && pgrep -x wrk >/dev/null; do
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    [ "${rss:-0}" -gt "$peak" ] && peak="$rss"
    sleep 0.1
  done
  echo "$((peak / 1024))" > "$out"
}

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" -c "CREATE DATABASE $PGBENCH_DB"
pgbench -q -i -s 1 "$PG/$PGBENCH_DB" >/dev/null 2>&1

echo "simrenew orders benchmark: wallet orders on PostgreSQL, $CLIENTS concurrent clients, $DURATION on $(nproc) cores"
IDLE_RSS_MB="$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status")"
for round in $(seq 1 "$ROUNDS"); do
  pg_out="$(pgbench -b tpcb-like -c "$CLIENTS" -j 2 -s 1 -T "${DURATION%s}" "$PG/$PGBENCH_DB" 2>&1)"
  pg_tps="$(echo "$pg_out" | awk -F'= ' '/^tps/ {print $2}' | awk '{print $1}' | head -1)"
  printf '%-40s %12s tps     (%s)\n' "reference: pgbench tpcb-like -s 1  r$round" "$pg_tps" "$(echo "$pg_out" | awk '/latency average/ {print $0}')"
  echo "$pg_tps" > "$WORK/pgbench__r$round.rps"
  if [ "$round" = 1 ]; then ( sleep 1; peak_rss_sampler "$SERVER_PID" "$WORK/rss_mb" ) & SAMPLER=$!; fi
  measure_script "POST /v1/orders (wallet)  r$round" "$BASE" "$WORK/order.lua"
  if [ "$round" = 1 ]; then wait "$SAMPLER" || true; fi
done
ratio_line "orders / pgbench" POST__v1_orders__wallet_ pgbench 0.7

# Half the rate reached: each client waits between orders so that together they ask
# for half of it (a closed loop: latency lengthens the gap a little, not the rate up).
rps="$(cat "$WORK"/POST__v1_orders__wallet___r*.rps | python3 -c "import sys; v=[float(x) for x in sys.stdin]; print(sum(v)/len(v))")"
half="$(python3 -c "print(max(1, round(float('$rps') / 2)))")"
gap_ms="$(python3 -c "print(max(1, round($CLIENTS * 1000 / $half)))")"
sed "s/^request = function()/function delay() return math.random(0, 2 * $gap_ms) end\nrequest = function()/" \
  "$WORK/order.lua" > "$WORK/order_half.lua"
measure_script "… at about half ($half/s asked)" "$BASE" "$WORK/order_half.lua"
python3 - "$WORK" <<'PY'
import sys, pathlib, re
w = pathlib.Path(sys.argv[1])
text = next(w.glob("*about_half*.wrk")).read_text()
v = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
n, unit = float(v.group(1)), v.group(2)
ms = n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
print(f"p99 at half the rate: {ms:.1f} ms  (goal < 20 ms: {'met' if ms < 20 else 'NOT met'})")
PY
echo "server RSS: $IDLE_RSS_MB MB idle, $(cat "$WORK/rss_mb") MB at the peak of the order load  (goal < 64 MB)"
psql "$DATABASE_URL" -Atc "SELECT 'orders written: ' || count(*) || ', ledger sum = balance: ' || ((SELECT sum(amount) FROM ledger_entries) = (SELECT sum(available) FROM wallet_balances)) FROM orders"
psql "$DATABASE_URL" -Atc "SELECT (SELECT sum(amount) FROM ledger_entries) = (SELECT sum(available) FROM wallet_balances)" | grep -qx t \
  || { echo "the ledger does not add up to the balance" >&2; exit 1; }
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"

#!/usr/bin/env bash
# Webhook delivery on PostgreSQL, to a local receiver, in two runs of DURATION:
#  1. live: wallet orders (each appends `order.paid`) delivered as they commit. Prints
#     the lag from commit to arrival (p50/p99) and the ratio of the delivery rate to the
#     rate events were made at (1.00: delivery keeps up).
#  2. backlog: the receiver answers 503 while orders are made, then recovers; every
#     delivery is due at once. Prints how fast the backlog drains (events/s): the
#     sender's own ceiling.
# Usage: bench/webhooks.sh   (DURATION=10s CLIENTS=8 PG=postgres://postgres@127.0.0.1:5432)
source "$(dirname "$0")/lib.sh"

CLIENTS="${CLIENTS:-8}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="simrenew_bench_webhooks"
RECEIVER_PORT="${RECEIVER_PORT:-18282}"
need_wrk
build_release
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
export DATABASE_URL="$PG/$DB_NAME" SIMRENEW_WEBHOOK_ALLOW_PRIVATE_TARGETS=true
# A refused delivery comes back after 2 s: the backlog run's recovery is then one wave.
export SIMRENEW_WEBHOOK_RETRY_DELAYS_S=2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2
export SIMRENEW_RATE_LIMIT_PER_S=100000 SIMRENEW_RATE_LIMIT_BURST=100000

# The receiver: answers 204 at once and notes when each delivery arrived.
cat > "$WORK/receiver.py" <<'PY'
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[2], "a", buffering=1)
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        arrived = time.time()
        if os.path.exists(sys.argv[3]):
            self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
            return
        if self.headers.get("webhook-id"):
            event = json.loads(body)
            log.write(f"{self.headers['webhook-id']} {event['timestamp']} {arrived}\n")
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
    def handle(self):
        try: super().handle()
        except ConnectionResetError: pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$WORK/receiver.py" "$RECEIVER_PORT" "$WORK/arrivals.log" "$WORK/refuse" &
RECEIVER_PID=$!
trap 'kill $RECEIVER_PID 2>/dev/null || true; cleanup' EXIT
sleep 0.5

"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null 2>&1
PARTNER_JSON="$("$BIN" partner create --name "bench" --scopes "orders:write webhooks" --json 2>/dev/null)"
PARTNER_ID="$(echo "$PARTNER_JSON" | json_field partner_id)"
printf 'iccid,card_type,msisdn,eid\n89860012345678901238,fm,,\n' > "$WORK/cards.csv"
"$BIN" cards import "$WORK/cards.csv" --partner "$PARTNER_ID" >/dev/null 2>&1
"$BIN" wallet credit --partner "$PARTNER_ID" --currency CNY --amount 900000000000 >/dev/null 2>&1
PLAN_ID="$(psql "$DATABASE_URL" -Atc "SELECT id FROM plans WHERE code = 'CN-FM-M-10G'")"
start_server
TOKEN="$(curl -fs -u "$(echo "$PARTNER_JSON" | json_field client_id):$(echo "$PARTNER_JSON" | json_field client_secret)" \
  -d grant_type=client_credentials "$BASE/v1/oauth/token" | json_field access_token)"
curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"url\": \"http://127.0.0.1:$RECEIVER_PORT/hooks\", \"event_types\": [\"order.paid\"]}" \
  "$BASE/v1/webhook-endpoints"

cat > "$WORK/order.lua" <<LUA
local counter = 0
local thread_id = 0
function setup(thread) thread_id = thread_id + 1; thread:set("tid", thread_id) end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/orders", {
    ["Authorization"] = "Bearer $TOKEN",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. tid .. "-" .. counter .. "-" .. os.time(),
  }, '{"iccid":"89860012345678901238","plan_id":"$PLAN_ID","currency":"CNY","payment_method":"wallet"}')
end
LUA
echo "simrenew webhook benchmark: wallet orders for $DURATION with $CLIENTS clients, each event delivered to a local receiver, $(nproc) cores"
wrk -t"$THREADS" -c"$CLIENTS" -d"$DURATION" -s "$WORK/order.lua" "$BASE" > "$WORK/orders.out"
orders="$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM events WHERE type = 'order.paid'")"
for _ in $(seq 1 600); do
  [ "$(wc -l < "$WORK/arrivals.log")" -ge "$orders" ] && break
  sleep 0.1
done
python3 - "$WORK/arrivals.log" "$orders" <<'PY'
import sys
from datetime import datetime
rows = [line.split() for line in open(sys.argv[1])]
expected = int(sys.argv[2])
ids = {r[0] for r in rows}
made = [datetime.fromisoformat(r[1].replace("Z", "+00:00")).timestamp() for r in rows]
arrived = [float(r[2]) for r in rows]
lags = sorted(a - m for a, m in zip(arrived, made))
pct = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] * 1000
span = max(arrived) - min(made)
print(f"events made {expected}, delivered {len(rows)} ({len(ids)} distinct ids)")
print(f"delivery throughput   {len(rows) / span:.0f} events/s over {span:.1f} s")
print(f"lag commit->arrival   p50 {pct(0.50):.0f} ms   p99 {pct(0.99):.0f} ms   max {lags[-1] * 1000:.0f} ms")
made_span = max(made) - min(made)
print(f"events made at        {expected / made_span:.0f} events/s over {made_span:.1f} s")
print(f"ratio delivered/made  {(len(rows) / span) / (expected / made_span):.2f}")
PY

# 2. The backlog: every delivery refused while orders are made, then all due at once.
: > "$WORK/arrivals.log"
touch "$WORK/refuse"
wrk -t"$THREADS" -c"$CLIENTS" -d"$DURATION" -s "$WORK/order.lua" "$BASE" > "$WORK/orders2.out"
total="$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM events WHERE type = 'order.paid'")"
backlog=$((total - orders))
rm "$WORK/refuse"
for _ in $(seq 1 1200); do
  [ "$(wc -l < "$WORK/arrivals.log")" -ge "$backlog" ] && break
  sleep 0.1
done
python3 - "$WORK/arrivals.log" "$backlog" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
arrived = sorted(float(r[2]) for r in rows)
span = arrived[-1] - arrived[0]
print(f"backlog of {sys.argv[2]} drained: {len(rows)} delivered ({len({r[0] for r in rows})} distinct) "
      f"at {len(rows) / span:.0f} events/s over {span:.1f} s")
PY
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"

#!/usr/bin/env bash
# Balance throughput on PostgreSQL: GET /v1/cards/{iccid}/balance with 100 000 cards
# loaded, a random ICCID per request. Prints requests/s, p50/p99 and the query plans.
# Usage: bench/balance.sh   (CARDS=100000 DURATION=10s CONNECTIONS=32 PG=postgres://postgres@127.0.0.1:5432)
source "$(dirname "$0")/lib.sh"

CARDS="${CARDS:-100000}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="simrenew_bench_balance"
need_wrk
build_release
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
export DATABASE_URL="$PG/$DB_NAME"
"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null 2>&1
PARTNER_JSON="$("$BIN" partner create --name "bench owner" --scopes "cards:read" --json 2>/dev/null)"
PARTNER_ID="$(echo "$PARTNER_JSON" | json_field partner_id)"

echo "generating and importing $CARDS cards through 'simrenew cards import'…"
python3 - "$CARDS" "$WORK" <<'PY'
import sys
count, work = int(sys.argv[1]), sys.argv[2]
def luhn_digit(body):
    for d in range(10):
        s = body + str(d)
        total = 0
        for i, c in enumerate(reversed(s)):
            v = int(c)
            if i % 2 == 1:
                v *= 2
                v -= 9 if v > 9 else 0
            total += v
        if total % 10 == 0:
            return s
with open(f"{work}/cards.csv", "w") as csv, open(f"{work}/iccids.txt", "w") as ids:
    csv.write("iccid,card_type,msisdn,eid\n")
    for n in range(count):
        iccid = luhn_digit(f"8986099{n:012d}")
        csv.write(f"{iccid},{'fm' if n % 2 else 'esim'},,\n")
        ids.write(iccid + "\n")
PY
start=$(date +%s)
"$BIN" cards import "$WORK/cards.csv" --partner "$PARTNER_ID" 2>/dev/null
echo "import took $(( $(date +%s) - start )) s"

# Every card gets a current term and half of them a queued one, as a live system would have.
psql "$DATABASE_URL" -q <<'SQL'
INSERT INTO terms (id, iccid, plan_id, order_id, valid_from, valid_until, data_total_bytes,
                   voice_total_minutes, sms_total, data_used_bytes, voice_used_minutes, sms_used, created_at)
SELECT gen_random_uuid()::text, c.iccid, p.id, NULL, now() - interval '3 days', now() + interval '27 days',
       p.data_bytes, p.voice_minutes, p.sms, 123456789, 12, 3, now()
FROM cards c JOIN plans p ON p.code = CASE WHEN c.card_type = 'fm' THEN 'CN-FM-M-10G' ELSE 'JP-ESIM-M-5G' END;
INSERT INTO terms (id, iccid, plan_id, order_id, valid_from, valid_until, data_total_bytes,
                   voice_total_minutes, sms_total, data_used_bytes, voice_used_minutes, sms_used, created_at)
SELECT gen_random_uuid()::text, t.iccid, t.plan_id, NULL, t.valid_until, t.valid_until + interval '30 days',
       t.data_total_bytes, t.voice_total_minutes, t.sms_total, 0, 0, 0, now()
FROM terms t WHERE right(t.iccid, 1) IN ('0', '2', '4', '6', '8');
ANALYZE;
SQL

start_server
TOKEN="$(curl -fs -u "$(echo "$PARTNER_JSON" | json_field client_id):$(echo "$PARTNER_JSON" | json_field client_secret)" \
  -d grant_type=client_credentials "$BASE/v1/oauth/token" | json_field access_token)"
cat > "$WORK/random_balance.lua" <<LUA
local iccids = {}
for line in io.lines("$WORK/iccids.txt") do iccids[#iccids + 1] = line end
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format("GET", "/v1/cards/" .. iccids[math.random(#iccids)] .. "/balance")
end
LUA

echo "simrenew balance benchmark: $CARDS cards on PostgreSQL, wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores"
out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/random_balance.lua" "$BASE")"
if echo "$out" | grep -q "Non-2xx"; then echo "$out"; echo "non-2xx answers" >&2; exit 1; fi
printf 'GET /v1/cards/{iccid}/balance  %s req/s   p50 %s   p99 %s\n' \
  "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
  "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
  "$(echo "$out" | awk '$1 == "99%" {print $2}')"

SAMPLE="$(sed -n '4242p' "$WORK/iccids.txt")"
echo
echo "the query plan of one request's one query (ICCID $SAMPLE, the card with its terms and plan codes):"
psql "$DATABASE_URL" <<SQL
EXPLAIN ANALYZE
SELECT c.*, t.*, p.code
FROM cards c LEFT JOIN (terms t INNER JOIN plans p ON p.id = t.plan_id) ON t.iccid = c.iccid
WHERE c.iccid = '$SAMPLE' AND c.partner_id = '$PARTNER_ID'
ORDER BY t.valid_from;
SQL
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"

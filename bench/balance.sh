#!/usr/bin/env bash
# Balance throughput on PostgreSQL: GET /v1/cards/{iccid}/balance for a random card of
# CARDS (default 10 000; half FM, half eSIM; each with a current term, half with a queued
# one), next to the same-machine reference measured in the same run:
# examples/ceiling_pk.rs, an actix-web handler reading one card by primary key with
# diesel through simrenew's own pool type. Prints the ratio (goal >= 1.0).
#
# The server keeps recent cards in memory (SIMRENEW_CARD_CACHE_SIZE, 20 000 by default),
# which is what lets it pass a reference that reads the database every time.
#
# With SCALE_TO=1000000 it then measures the database path (a server keeping no cards in
# memory: 10 000 cards fit in memory and a million do not, which would compare the cache,
# not the database) at CARDS cards, imports cards up to SCALE_TO through
# `simrenew cards import` (one streamed file), prints the import rate, measures again over
# all of them and prints p50/p99 at both sizes (goal: within 20 %).
# Usage: bench/balance.sh   (CARDS=10000 SCALE_TO= DURATION=10s CONNECTIONS=32 PG=postgres://postgres@127.0.0.1:5432)
source "$(dirname "$0")/lib.sh"

CARDS="${CARDS:-10000}"
SCALE_TO="${SCALE_TO:-}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="simrenew_bench_balance"
need_wrk
build_release
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
export DATABASE_URL="$PG/$DB_NAME"
"$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null 2>&1
PARTNER_JSON="$("$BIN" partner create --name "bench owner" --scopes "cards:read" --json 2>/dev/null)"
PARTNER_ID="$(echo "$PARTNER_JSON" | json_field partner_id)"

# make_cards FROM TO: writes cards FROM..TO-1 as one CSV file ($WORK/cards-FROM.csv; the
# import streams it) and appends their ICCIDs to $WORK/iccids.txt.
make_cards() {
  python3 "$ROOT/bench/cards_csv.py" --out "$WORK/cards-$1.csv" --prefix 8986099 \
    --first "$1" --count "$(( $2 - $1 ))" --mixed --ids "$WORK/iccids.txt"
}

# import_cards: imports every $WORK/cards-*.csv through the CLI, then gives each new card
# a current term and half of them a queued one, as a live system would have.
import_cards() {
  local file
  for file in "$WORK"/cards-*.csv; do
    "$BIN" cards import "$file" --partner "$PARTNER_ID" >/dev/null 2>&1
    rm "$file"
  done
  psql "$DATABASE_URL" -q <<'SQL'
INSERT INTO terms (id, iccid, plan_id, order_id, valid_from, valid_until, data_total_bytes,
                   voice_total_minutes, sms_total, data_used_bytes, voice_used_minutes, sms_used, created_at)
SELECT gen_random_uuid()::text, c.iccid, p.id, NULL, now() - interval '3 days', now() + interval '27 days',
       p.data_bytes, p.voice_minutes, p.sms, 123456789, 12, 3, now()
FROM cards c JOIN plans p ON p.code = CASE WHEN c.card_type = 'fm' THEN 'CN-FM-M-10G' ELSE 'JP-ESIM-M-5G' END
WHERE NOT EXISTS (SELECT 1 FROM terms t WHERE t.iccid = c.iccid);
INSERT INTO terms (id, iccid, plan_id, order_id, valid_from, valid_until, data_total_bytes,
                   voice_total_minutes, sms_total, data_used_bytes, voice_used_minutes, sms_used, created_at)
SELECT gen_random_uuid()::text, t.iccid, t.plan_id, NULL, t.valid_until, t.valid_until + interval '30 days',
       t.data_total_bytes, t.voice_total_minutes, t.sms_total, 0, 0, 0, now()
FROM terms t WHERE right(t.iccid, 1) IN ('0', '2', '4', '6', '8') AND t.data_used_bytes > 0
  AND NOT EXISTS (SELECT 1 FROM terms q WHERE q.iccid = t.iccid AND q.valid_from >= t.valid_until);
ANALYZE;
SQL
}

# request_script: a wrk script asking for a random card of the $WORK/iccids.txt made so
# far (cards_csv.py's numbering: the prefix, n on 12 digits, a Luhn check digit), each
# ICCID computed from its n. A table of a million Lua strings would make wrk's own
# garbage collection pause its requests (measured against a constant JSON server: p99
# 1.4-3.9 ms with 10 000 strings, 91-120 ms with a million), counted as the server's.
request_script() {
  local count
  count="$(wc -l < "$WORK/iccids.txt")"
  cat > "$WORK/random_balance.lua" <<LUA
local function luhn(body)
  for check = 0, 9 do
    local candidate, total = body .. check, 0
    for i = #candidate, 1, -1 do
      local v = tonumber(candidate:sub(i, i))
      if (#candidate - i) % 2 == 1 then v = v * 2; if v > 9 then v = v - 9 end end
      total = total + v
    end
    if total % 10 == 0 then return candidate end
  end
end
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  local iccid = luhn(string.format("8986099%012d", math.random($count) - 1))
  return wrk.format("GET", "/v1/cards/" .. iccid .. "/balance")
end
LUA
}

make_cards 0 "$CARDS"
import_cards
start_server
TOKEN="$(curl -fs -u "$(echo "$PARTNER_JSON" | json_field client_id):$(echo "$PARTNER_JSON" | json_field client_secret)" \
  -d grant_type=client_credentials "$BASE/v1/oauth/token" | json_field access_token)"
request_script
start_reference "$CEILING_PK" "127.0.0.1:$REFERENCE_PORT"

echo "simrenew balance benchmark: $CARDS cards on PostgreSQL, wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  measure_script "reference: one primary-key SELECT  r$round" "$REFERENCE_BASE" "$WORK/random_balance.lua"
  measure_script "GET /v1/cards/{iccid}/balance  r$round" "$BASE" "$WORK/random_balance.lua"
done
ratio_line "balance / one-row SELECT" GET__v1_cards__iccid__balance reference__one_primary_key_SELECT 1.0

if [ -n "$SCALE_TO" ]; then
  stop_reference
  stop_server
  SIMRENEW_CARD_CACHE_SIZE=0 start_server
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/random_balance.lua" "$BASE" >/dev/null
  measure_script "GET …/balance at $CARDS cards" "$BASE" "$WORK/random_balance.lua"
  make_cards "$CARDS" "$SCALE_TO"
  started=$(date +%s.%N)
  import_cards
  python3 -c "import sys; n=$SCALE_TO-$CARDS; s=float('$(date +%s.%N)')-$started; print(f'imported {n} cards through simrenew cards import (and their terms) in {s:.0f} s: {n/s:.0f} cards/s')"
  # The load's own aftermath (dirty pages, autovacuum) is not what is being measured.
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE" -c "CHECKPOINT"
  request_script
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/random_balance.lua" "$BASE" >/dev/null
  measure_script "GET …/balance at $SCALE_TO cards" "$BASE" "$WORK/random_balance.lua"
  python3 - "$WORK" "$CARDS" "$SCALE_TO" <<'PY'
import sys, pathlib, re
w, small, big = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def pcts(key):
    text = (w / f"{key}.wrk").read_text()
    def ms(label):
        v = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        n, unit = float(v.group(1)), v.group(2)
        return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
    return ms("50%"), ms("99%")
a = pcts(next(w.glob(f"GET_*balance_at_{small}_cards.wrk")).stem)
b = pcts(next(w.glob(f"GET_*balance_at_{big}_cards.wrk")).stem)
flat = all(y <= x * 1.2 for x, y in zip(a, b))
print(f"from the database: p50 {a[0]:.2f} ms -> {b[0]:.2f} ms, p99 {a[1]:.2f} ms -> {b[1]:.2f} ms from {small} to {big} cards "
      f"(goal: within 20 %: {'met' if flat else 'NOT met'})")
PY
fi

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

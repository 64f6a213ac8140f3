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
# With SCALE_TO=1000000 it then measures the database path (servers keeping no cards in
# memory: 10 000 cards fit in memory and a million do not, which would compare the cache,
# not the database): it imports SCALE_TO cards into a second database through
# `simrenew cards import` (one streamed file), prints the import rate, then measures one
# server on each database in alternating rounds (SCALE_ROUNDS, 3 by default, so that a
# burst of noise on this shared machine falls on both sizes) and prints the median p50 and
# p99 at both sizes (goal: within 20 %).
# Usage: bench/balance.sh   (CARDS=10000 SCALE_TO= SCALE_ROUNDS=3 DURATION=10s CONNECTIONS=32
#                            PG=postgres://postgres@127.0.0.1:5432)
source "$(dirname "$0")/lib.sh"

CARDS="${CARDS:-10000}"
SCALE_TO="${SCALE_TO:-}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
SCALE_ROUNDS="${SCALE_ROUNDS:-3}"
DB_NAME="simrenew_bench_balance"
SCALE_DB_NAME="simrenew_bench_balance_scale"
SCALE_PORT="${SCALE_PORT:-18182}"
need_wrk
build_release

# new_database NAME: an empty simrenew database NAME with the demo plans and a partner
# owning its cards; DATABASE_URL is set to it and PARTNER_JSON to the partner.
new_database() {
  psql "$PG/postgres" -qc "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" \
    -c "CREATE DATABASE $1"
  export DATABASE_URL="$PG/$1"
  "$BIN" plans import "$ROOT/src/catalog/demo_plans.json" >/dev/null 2>&1
  PARTNER_JSON="$("$BIN" partner create --name "bench owner" --scopes "cards:read" --json 2>/dev/null)"
}

# import_cards COUNT: imports cards 0..COUNT-1 into $DATABASE_URL for the partner of
# $PARTNER_JSON through the CLI (one CSV file, which the import streams), then gives each
# card a current term and half of them a queued one, as a live system would have.
# IMPORT_TIMES: when the import started, when it ended and when the terms were written.
import_cards() {
  python3 "$ROOT/bench/cards_csv.py" --out "$WORK/cards.csv" --prefix 8986099 --count "$1" --mixed
  IMPORT_TIMES="$(date +%s.%N)"
  "$BIN" cards import "$WORK/cards.csv" --partner "$(echo "$PARTNER_JSON" | json_field partner_id)" >/dev/null 2>&1
  IMPORT_TIMES="$IMPORT_TIMES $(date +%s.%N)"
  rm "$WORK/cards.csv"
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
  IMPORT_TIMES="$IMPORT_TIMES $(date +%s.%N)"
}

# token_of BASE_URL: an access token for the partner of $PARTNER_JSON from BASE_URL.
token_of() {
  curl -fs -u "$(echo "$PARTNER_JSON" | json_field client_id):$(echo "$PARTNER_JSON" | json_field client_secret)" \
    -d grant_type=client_credentials "$1/v1/oauth/token" | json_field access_token
}

# request_script FILE COUNT TOKEN: a wrk script asking for a random card of the first
# COUNT (cards_csv.py's numbering: the prefix, n on 12 digits, a Luhn check digit), each
# ICCID computed from its n. A table of a million Lua strings would make wrk's own
# garbage collection pause its requests (measured against a constant JSON server: p99
# 1.4-3.9 ms with 10 000 strings, 91-120 ms with a million), counted as the server's.
request_script() {
  cat > "$1" <<LUA
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
wrk.headers["Authorization"] = "Bearer $3"
request = function()
  local iccid = luhn(string.format("8986099%012d", math.random($2) - 1))
  return wrk.format("GET", "/v1/cards/" .. iccid .. "/balance")
end
LUA
}

new_database "$DB_NAME"
import_cards "$CARDS"
start_server
request_script "$WORK/random_balance.lua" "$CARDS" "$(token_of "$BASE")"
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
  SMALL_URL="$DATABASE_URL"
  new_database "$SCALE_DB_NAME"
  import_cards "$SCALE_TO"
  python3 - "$SCALE_TO" $IMPORT_TIMES <<'PY'
import sys
n, started, imported, termed = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"imported {n} cards through simrenew cards import in {imported - started:.1f} s: "
      f"{n / (imported - started):,.0f} cards/s (then their terms by SQL in {termed - imported:.1f} s)")
PY
  # The load's own aftermath (dirty pages, autovacuum) is not what is being measured.
  for url in "$SMALL_URL" "$DATABASE_URL"; do psql "$url" -qc "VACUUM ANALYZE" -c "CHECKPOINT"; done
  psql "$DATABASE_URL" -Atc "SELECT 'at ' || count(*) || ' cards the card and term tables take '
      || pg_size_pretty(pg_total_relation_size('cards') + pg_total_relation_size('terms'))
      || ' against shared_buffers of ' || current_setting('shared_buffers') FROM cards"
  SCALE_BASE="http://127.0.0.1:$SCALE_PORT"
  SIMRENEW_CARD_CACHE_SIZE=0 start_server "$SCALE_PORT"
  request_script "$WORK/random_balance_scale.lua" "$SCALE_TO" "$(token_of "$SCALE_BASE")"
  DATABASE_URL="$SMALL_URL" SIMRENEW_CARD_CACHE_SIZE=0 start_server
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/random_balance.lua" "$BASE" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/random_balance_scale.lua" "$SCALE_BASE" >/dev/null
  for round in $(seq 1 "$SCALE_ROUNDS"); do
    measure_script "balance at $CARDS cards  r$round" "$BASE" "$WORK/random_balance.lua"
    measure_script "balance at $SCALE_TO cards  r$round" "$SCALE_BASE" "$WORK/random_balance_scale.lua"
  done
  python3 - "$WORK" "$CARDS" "$SCALE_TO" <<'PY'
import pathlib, re, statistics, sys
w, small, big = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def ms(text, label):
    v = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    n, unit = float(v.group(1)), v.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
def medians(cards):
    texts = [f.read_text() for f in sorted(w.glob(f"balance_at_{cards}_cards__r*.wrk"))]
    return statistics.median(ms(t, "50%") for t in texts), statistics.median(ms(t, "99%") for t in texts)
a, b = medians(small), medians(big)
flat = all(y <= x * 1.2 for x, y in zip(a, b))
print(f"from the database, median of {len(list(w.glob(f'balance_at_{small}_cards__r*.wrk')))} rounds: "
      f"p50 {a[0]:.2f} ms -> {b[0]:.2f} ms ({b[0] / a[0] - 1:+.0%}), "
      f"p99 {a[1]:.2f} ms -> {b[1]:.2f} ms ({b[1] / a[1] - 1:+.0%}) from {small} to {big} cards "
      f"(goal: within 20 %: {'met' if flat else 'NOT met'})")
PY
fi

SAMPLE="$(cd "$ROOT/bench" && python3 -c "from cards_csv import luhn; print(luhn('8986099%012d' % 4242))")"
echo
echo "the query plan of one request's one query (ICCID $SAMPLE: the card with its terms; plan codes come from memory):"
psql "$DATABASE_URL" <<SQL
EXPLAIN ANALYZE
SELECT c.*, t.*
FROM cards c LEFT JOIN terms t ON t.iccid = c.iccid
WHERE c.iccid = '$SAMPLE' AND c.partner_id = '$(echo "$PARTNER_JSON" | json_field partner_id)';
SQL
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
  -c "DROP DATABASE IF EXISTS $SCALE_DB_NAME WITH (FORCE)"

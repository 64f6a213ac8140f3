#!/usr/bin/env bash
# The operator's card import at scale: ROWS (default 1 000 000) cards in one CSV file,
# imported into a fresh PostgreSQL database through `simrenew cards import`, with a few
# bad rows among them. Prints the import's own progress lines (stderr is not a terminal
# here, so they are the plain ones), its rate, its peak resident memory (GNU time), and
# checks the rows in the database and the refusals against what the file holds.
#   bench/import.sh            ROWS=200000 bench/import.sh
source "$(dirname "$0")/lib.sh"
ROWS="${ROWS:-1000000}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=simrenew_bench_import
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }
build_release
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME"
export DATABASE_URL="$PG/$DB_NAME"
PARTNER_ID="$("$BIN" partner create --name "bench importer" --scopes "cards:read" --json 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["partner_id"])')"

# Every 100 000th row is bad (an ICCID with a wrong check digit).
python3 "$ROOT/bench/cards_csv.py" --out "$WORK/cards.csv" --prefix 8986077 --count "$ROWS" \
  --mixed --msisdn --bad-every 100000
BAD=$(( ROWS / 100000 ))
echo "file: $ROWS rows, $(du -h "$WORK/cards.csv" | cut -f1), $BAD of them bad"

set +e
/usr/bin/time -f "%e s elapsed, %M KiB peak RSS" -o "$WORK/time.txt" \
  "$BIN" cards import "$WORK/cards.csv" --partner "$PARTNER_ID" >"$WORK/tally.json" 2>"$WORK/stderr.txt"
status=$?
set -e
grep "cards import:" "$WORK/stderr.txt" || true
echo "refused lines: $(grep -c '^line .*: refused: ' "$WORK/stderr.txt") (first: $(grep -m1 '^line ' "$WORK/stderr.txt"))"
grep -v '^line \|cards import:' "$WORK/stderr.txt" || true
echo "tally: $(cat "$WORK/tally.json"), exit status $status"
tail -1 "$WORK/time.txt"
in_db=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM cards WHERE partner_id = '$PARTNER_ID'")
python3 - "$WORK/time.txt" "$ROWS" "$BAD" "$in_db" "$status" <<'PY'
import sys
# GNU time writes "Command exited with non-zero status N" first when it does.
text = open(sys.argv[1]).read().splitlines()[-1].split()
seconds, peak_kib = float(text[0]), int(text[3])
rows, bad, in_db, status = map(int, sys.argv[2:6])
print(f"import: {rows} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s, peak RSS {peak_kib / 1024:.1f} MiB")
ok = in_db == rows - bad and status == (1 if bad else 0)
print(f"check: {in_db} cards in the database, expected {rows - bad}: {'ok' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"

CREATE TABLE receipt_counters (
    day   TEXT PRIMARY KEY,
    last  BIGINT NOT NULL
);
INSERT INTO receipt_counters (day, last)
SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD'), last_value FROM receipt_numbers;
DROP SEQUENCE receipt_numbers;

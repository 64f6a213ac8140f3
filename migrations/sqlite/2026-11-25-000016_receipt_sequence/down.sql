CREATE TABLE receipt_counters (
    day   TEXT PRIMARY KEY,
    last  BIGINT NOT NULL
);
INSERT INTO receipt_counters (day, last)
SELECT strftime('%Y%m%d', 'now'), last FROM receipt_sequence;
DROP TABLE receipt_sequence;

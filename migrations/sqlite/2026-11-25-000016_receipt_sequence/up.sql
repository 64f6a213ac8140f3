-- Receipt numbers from one counter that grows across days (PostgreSQL uses a sequence;
-- SQLite has one writer, so a counter row costs no waiting there). It continues past
-- every number handed out so far, so numbers stay unique.
CREATE TABLE receipt_sequence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO receipt_sequence (id, last)
VALUES (1, COALESCE((SELECT MAX(last) FROM receipt_counters), 0));
DROP TABLE receipt_counters;

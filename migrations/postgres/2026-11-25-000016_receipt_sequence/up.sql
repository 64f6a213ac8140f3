-- Receipt numbers from a sequence instead of one counter row per day: the counter row was
-- locked by every paid order of the day until its commit, so all partners' orders waited
-- for each other there. The sequence continues past every number handed out so far, so
-- numbers stay unique (R-<day>-<n>; n now grows across days and may skip a number that a
-- rolled-back order took).
CREATE SEQUENCE receipt_numbers AS BIGINT MINVALUE 1;
SELECT setval('receipt_numbers', COALESCE((SELECT MAX(last) FROM receipt_counters), 0) + 1, false);
DROP TABLE receipt_counters;

DROP TRIGGER partners_rate_limit_both_update;
DROP TRIGGER partners_rate_limit_both_insert;
ALTER TABLE partners DROP COLUMN rate_limit_burst;
ALTER TABLE partners DROP COLUMN rate_limit_per_second;

ALTER TABLE partners DROP COLUMN rate_limit_burst;
ALTER TABLE partners DROP COLUMN rate_limit_per_second;

ALTER TABLE partners DROP CONSTRAINT partners_rate_limit_both;
ALTER TABLE partners DROP COLUMN rate_limit_burst;
ALTER TABLE partners DROP COLUMN rate_limit_per_second;

-- A partner's own request quota (requests a second and burst); NULL: the deployment's
-- default. Both are set or neither.
ALTER TABLE partners ADD COLUMN rate_limit_per_second INTEGER
    CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second BETWEEN 1 AND 100000);
ALTER TABLE partners ADD COLUMN rate_limit_burst INTEGER
    CHECK (rate_limit_burst IS NULL OR rate_limit_burst BETWEEN 1 AND 100000);
-- SQLite cannot add a table constraint to an existing table: triggers hold "both or
-- neither" instead.
CREATE TRIGGER partners_rate_limit_both_insert BEFORE INSERT ON partners
WHEN (NEW.rate_limit_per_second IS NULL) != (NEW.rate_limit_burst IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'rate_limit_per_second and rate_limit_burst are set together');
END;
CREATE TRIGGER partners_rate_limit_both_update
BEFORE UPDATE OF rate_limit_per_second, rate_limit_burst ON partners
WHEN (NEW.rate_limit_per_second IS NULL) != (NEW.rate_limit_burst IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'rate_limit_per_second and rate_limit_burst are set together');
END;

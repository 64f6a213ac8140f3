-- A partner's own request quota (requests a second and burst); NULL: the deployment's
-- default. Both are set or neither.
ALTER TABLE partners ADD COLUMN rate_limit_per_second INTEGER
    CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second BETWEEN 1 AND 100000);
ALTER TABLE partners ADD COLUMN rate_limit_burst INTEGER
    CHECK (rate_limit_burst IS NULL OR rate_limit_burst BETWEEN 1 AND 100000);
ALTER TABLE partners ADD CONSTRAINT partners_rate_limit_both
    CHECK ((rate_limit_per_second IS NULL) = (rate_limit_burst IS NULL));

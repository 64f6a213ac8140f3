-- Tokens carry the generation they were issued in; suspending a partner starts a new
-- one, so resuming it does not bring its old tokens back.
ALTER TABLE partners ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
-- The holder of an idempotency claim, so that its lease (locked_until) can be renewed
-- while its work runs and be short: a crashed holder's claim lapses within seconds.
ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT;
-- One row that /readyz writes: readiness includes being able to write.
CREATE TABLE readiness_probe (
    id          INTEGER PRIMARY KEY,
    checked_at  TIMESTAMP NOT NULL
);

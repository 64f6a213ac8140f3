DROP TABLE readiness_probe;
ALTER TABLE idempotency_keys DROP COLUMN claim_token;
ALTER TABLE partners DROP COLUMN token_generation;

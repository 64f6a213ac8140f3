-- Whether a new eSIM activation code is withheld until the subscriber confirms an SMS
-- code (on by default; each partner and operators may turn it off).
ALTER TABLE partners ADD COLUMN verify_subscriber_before_release BOOLEAN NOT NULL DEFAULT TRUE;

-- The activation's code, QR and link are released once verified (when required).
ALTER TABLE activations ADD COLUMN verification_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE activations ADD COLUMN verified_at TIMESTAMP;
ALTER TABLE activations ADD COLUMN verified_msisdn TEXT;

-- Every code sent: only its keyed hash (HMAC-SHA256 with the service's verification
-- key), never the code. A row is written before the SMS is sent, so a send counts
-- against the limits even when its outcome is unknown.
CREATE TABLE verification_codes (
    id                   TEXT PRIMARY KEY,
    order_id             TEXT NOT NULL REFERENCES orders(id),
    msisdn               TEXT NOT NULL,
    code_hash            TEXT NOT NULL,
    provider             TEXT NOT NULL,
    provider_message_id  TEXT,
    status               TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'send_failed', 'verified')),
    checks               INTEGER NOT NULL,
    sent_at              TIMESTAMP NOT NULL,
    expires_at           TIMESTAMP NOT NULL
);
CREATE INDEX verification_codes_by_order ON verification_codes (order_id, sent_at);
CREATE INDEX verification_codes_by_msisdn ON verification_codes (msisdn, sent_at);

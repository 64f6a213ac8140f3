-- Where a partner wants its events pushed. `event_types` is space-separated (empty:
-- every type). The signing secret is kept to sign with; while a rotation overlaps,
-- the previous one signs beside it until `previous_secret_until`.
CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY,
    partner_id             TEXT NOT NULL REFERENCES partners(id),
    url                    TEXT NOT NULL,
    event_types            TEXT NOT NULL,
    description            TEXT,
    status                 TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  TIMESTAMP,
    -- Since when every attempt has failed (none succeeded since); after 5 days of
    -- that the endpoint is disabled and its partner told.
    failing_since          TIMESTAMP,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_by_partner ON webhook_endpoints (partner_id, id);

-- One event for one endpoint, made with the event (same transaction). A sender claims
-- it by a conditional update of `lease_until`/`claim_token`, so two instances never
-- send the same attempt, and a crashed sender's claim lapses.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP,
    lease_until      TIMESTAMP,
    claim_token      TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);

-- Every attempt, as the deliveries log shows it.
CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at TIMESTAMP NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

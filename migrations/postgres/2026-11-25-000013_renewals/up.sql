-- Scheduled orders: paid when placed, their activation made at `start_at`.
ALTER TABLE orders ADD COLUMN start_at TIMESTAMP;
CREATE INDEX orders_scheduled ON orders (start_at) WHERE start_at IS NOT NULL;

-- An eSIM whose profile is installed is renewed in place (no new activation code).
ALTER TABLE activations DROP CONSTRAINT activations_mode_check;
ALTER TABLE activations ADD CONSTRAINT activations_mode_check
    CHECK (mode IN ('esim_profile', 'ota', 'in_place'));

-- A card's automatic renewal from its partner's wallet: one per card. `covered_until`
-- is where the card's service ends counting the renewals this subscription has
-- placed; the term ending there is the one renewed next, at most once (the sweep's
-- update is conditional on it). `next_renewal_at` is when the sweep next tries: the
-- due time, or the retry after a failure; NULL once it ended.
CREATE TABLE subscriptions (
    id                        TEXT PRIMARY KEY,
    partner_id                TEXT NOT NULL REFERENCES partners(id),
    iccid                     TEXT NOT NULL UNIQUE REFERENCES cards(iccid),
    plan_id                   TEXT NOT NULL REFERENCES plans(id),
    currency                  TEXT NOT NULL,
    renew_days_before_expiry  INTEGER NOT NULL CHECK (renew_days_before_expiry BETWEEN 0 AND 30),
    ends_after_renewals       INTEGER CHECK (ends_after_renewals > 0),
    status                    TEXT NOT NULL CHECK (status IN ('active', 'paused', 'lapsed', 'cancelled')),
    covered_until             TIMESTAMP NOT NULL,
    next_renewal_at           TIMESTAMP,
    last_order_id             TEXT REFERENCES orders(id),
    renewals                  INTEGER NOT NULL,
    failed_attempts           INTEGER NOT NULL,
    last_failure              TEXT,
    created_at                TIMESTAMP NOT NULL,
    updated_at                TIMESTAMP NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (status, next_renewal_at);
CREATE INDEX subscriptions_by_partner ON subscriptions (partner_id, id);

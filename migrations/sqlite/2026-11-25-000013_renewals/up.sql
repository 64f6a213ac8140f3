-- Scheduled orders: paid when placed, their activation made at `start_at`.
ALTER TABLE orders ADD COLUMN start_at TIMESTAMP;
CREATE INDEX orders_scheduled ON orders (start_at) WHERE start_at IS NOT NULL;

-- An eSIM whose profile is installed is renewed in place (no new activation code).
-- SQLite cannot change a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE activations_new (
    order_id              TEXT PRIMARY KEY REFERENCES orders (id),
    iccid                 TEXT NOT NULL REFERENCES cards (iccid),
    card_type             TEXT NOT NULL CHECK (card_type IN ('fm', 'esim')),
    -- esim_profile: an SGP.22 activation code; ota: pushed over the air to an FM card;
    -- in_place: an installed eSIM profile renewed by the network, no new code
    mode                  TEXT NOT NULL CHECK (mode IN ('esim_profile', 'ota', 'in_place')),
    status                TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
    smdp_address          TEXT,
    matching_id           TEXT UNIQUE,
    term_id               TEXT REFERENCES terms (id),
    effective_from        TIMESTAMP,
    valid_until           TIMESTAMP,
    previous_valid_until  TIMESTAMP,
    confirmed_at          TIMESTAMP,
    failure_reason        TEXT,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL
);
INSERT INTO activations_new SELECT * FROM activations;
DROP TABLE activations;
ALTER TABLE activations_new RENAME TO activations;
CREATE INDEX activations_iccid ON activations (iccid);

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

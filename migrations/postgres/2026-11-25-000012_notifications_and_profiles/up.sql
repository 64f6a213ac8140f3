-- When a partner wants to be told about usage and expiry (no row: the defaults,
-- 75 90 100 and 7 3 1). Lists of whole numbers, space-separated, as the API took them.
CREATE TABLE notification_settings (
    partner_id               TEXT PRIMARY KEY REFERENCES partners(id),
    data_thresholds_percent  TEXT NOT NULL,
    expiry_days              TEXT NOT NULL,
    updated_at               TIMESTAMP NOT NULL
);

-- Tell the partner when its wallet in `currency` falls below `amount` (minor units).
CREATE TABLE wallet_alert_thresholds (
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (partner_id, currency)
);

-- Expiry notices handled, one row per term and threshold (`expired`: threshold 0).
-- The primary key makes a notice once-only across instances; `told` is false when
-- the threshold had passed before the term existed (nothing to warn about).
CREATE TABLE card_notices (
    term_id     TEXT NOT NULL REFERENCES terms(id),
    kind        TEXT NOT NULL CHECK (kind IN ('expiring', 'expired')),
    threshold   INTEGER NOT NULL,
    told        BOOLEAN NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (term_id, kind, threshold)
);
CREATE INDEX terms_by_end ON terms (valid_until);

-- What the SM-DP+ reported about eSIM profiles (SGP.22 ES2+ download progress),
-- once per event id. `order_id`: the activation whose matching id it names.
CREATE TABLE profile_events (
    id           TEXT PRIMARY KEY,
    iccid        TEXT NOT NULL REFERENCES cards(iccid),
    matching_id  TEXT,
    eid          TEXT,
    state        TEXT NOT NULL CHECK (state IN ('released', 'downloaded', 'installed', 'enabled', 'disabled', 'deleted', 'error')),
    occurred_at  TIMESTAMP NOT NULL,
    reason       TEXT,
    order_id     TEXT REFERENCES orders(id),
    received_at  TIMESTAMP NOT NULL
);
CREATE INDEX profile_events_by_order ON profile_events (order_id, occurred_at);
CREATE INDEX profile_events_by_card ON profile_events (iccid, occurred_at);

-- The card's profile as last reported (the latest `occurred_at` wins).
ALTER TABLE cards ADD COLUMN profile_state TEXT CHECK (profile_state IN ('released', 'downloaded', 'installed', 'enabled', 'disabled', 'deleted', 'error'));
ALTER TABLE cards ADD COLUMN profile_state_at TIMESTAMP;

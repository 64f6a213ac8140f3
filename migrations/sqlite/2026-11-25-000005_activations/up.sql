-- One activation per paid order: how the renewal reaches the card, and when it took effect.
CREATE TABLE activations (
    order_id              TEXT PRIMARY KEY REFERENCES orders (id),
    iccid                 TEXT NOT NULL REFERENCES cards (iccid),
    card_type             TEXT NOT NULL CHECK (card_type IN ('fm', 'esim')),
    -- esim_profile: an SGP.22 activation code; ota: pushed over the air to an FM card
    mode                  TEXT NOT NULL CHECK (mode IN ('esim_profile', 'ota')),
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
CREATE INDEX activations_iccid ON activations (iccid);

-- Cards (identified by ICCID), their service terms, and the usage applied to them.
CREATE TABLE cards (
    iccid       TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    card_type   TEXT NOT NULL CHECK (card_type IN ('fm', 'esim')),
    msisdn      TEXT,
    eid         TEXT,
    -- the only stored status; active/expired/inactive follow from the terms
    suspended   BOOLEAN NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX cards_partner_iccid ON cards (partner_id, iccid);

-- A period of service. valid_until is exclusive. Allowances are copied from the plan at
-- purchase, so later plan edits never change a term.
CREATE TABLE terms (
    id                   TEXT PRIMARY KEY,
    iccid                TEXT NOT NULL REFERENCES cards (iccid),
    plan_id              TEXT NOT NULL REFERENCES plans (id),
    -- NULL when an operator granted the term
    order_id             TEXT,
    valid_from           TIMESTAMP NOT NULL,
    valid_until          TIMESTAMP NOT NULL CHECK (valid_until >= valid_from),
    -- NULL means unlimited
    data_total_bytes     BIGINT,
    voice_total_minutes  INTEGER NOT NULL,
    sms_total            INTEGER NOT NULL,
    data_used_bytes      BIGINT NOT NULL,
    voice_used_minutes   BIGINT NOT NULL,
    sms_used             BIGINT NOT NULL,
    created_at           TIMESTAMP NOT NULL
);
CREATE INDEX terms_iccid_until ON terms (iccid, valid_until);

-- Usage reported by the network, applied exactly once per record id.
CREATE TABLE usage_records (
    id           TEXT PRIMARY KEY,
    iccid        TEXT NOT NULL REFERENCES cards (iccid),
    term_id      TEXT NOT NULL REFERENCES terms (id),
    kind         TEXT NOT NULL CHECK (kind IN ('data', 'voice', 'sms')),
    -- as reported: bytes, seconds or messages
    quantity     BIGINT NOT NULL CHECK (quantity > 0),
    -- as counted against the allowance: bytes, minutes (rounded up per record) or messages
    charged      BIGINT NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    received_at  TIMESTAMP NOT NULL
);
CREATE INDEX usage_records_term ON usage_records (term_id);

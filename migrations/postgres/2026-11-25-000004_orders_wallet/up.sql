-- Partner wallets: a running balance per currency, changed only in the same transaction
-- as the ledger entry that explains it, and never below zero.
CREATE TABLE wallet_balances (
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    currency    TEXT NOT NULL,
    available   BIGINT NOT NULL CHECK (available >= 0),
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_id, currency)
);

-- Append-only. amount is signed: credits and refunds positive, debits negative.
CREATE TABLE ledger_entries (
    id             TEXT PRIMARY KEY,
    partner_id     TEXT NOT NULL REFERENCES partners (id),
    currency       TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'refund', 'adjustment')),
    amount         BIGINT NOT NULL,
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    order_id       TEXT,
    reference      TEXT,
    created_at     TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_partner_id ON ledger_entries (partner_id, id);

CREATE TABLE orders (
    id                TEXT PRIMARY KEY,
    partner_id        TEXT NOT NULL REFERENCES partners (id),
    iccid             TEXT NOT NULL REFERENCES cards (iccid),
    plan_id           TEXT NOT NULL REFERENCES plans (id),
    status            TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'completed', 'failed',
                                                      'cancelled', 'expired', 'refunded')),
    -- the price at order time, in minor units
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT NOT NULL,
    payment_method    TEXT NOT NULL CHECK (payment_method IN ('wallet', 'card', 'alipay', 'wechat_pay')),
    payment_status    TEXT NOT NULL CHECK (payment_status IN ('pending', 'succeeded', 'failed', 'refunded')),
    receipt_number    TEXT UNIQUE,
    client_reference  TEXT,
    refunded_amount   BIGINT,
    refunded_at       TIMESTAMP,
    paid_at           TIMESTAMP,
    closed_at         TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX orders_partner_id ON orders (partner_id, id);
CREATE INDEX orders_partner_iccid ON orders (partner_id, iccid, id);
CREATE INDEX orders_status_created ON orders (status, created_at);

-- Receipt numbers R-YYYYMMDD-NNNNNN: one counter per UTC day.
CREATE TABLE receipt_counters (
    day   TEXT PRIMARY KEY,
    last  BIGINT NOT NULL
);

-- Idempotency-Key records, scoped per partner. The stored response is replayed byte for byte.
CREATE TABLE idempotency_keys (
    partner_id       TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    -- SHA-256 of method, path and canonical body
    fingerprint      TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    -- an in-progress claim older than this was abandoned (its work never committed)
    locked_until     TIMESTAMP NOT NULL,
    response_status  INTEGER,
    response_location TEXT,
    response_body    BYTEA,
    created_at       TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

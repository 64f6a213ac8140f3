-- The plan catalog. Prices and coverage are child rows so that the catalog filters
-- (currency, country) are indexed lookups on both backends.
CREATE TABLE plans (
    id             TEXT PRIMARY KEY,
    code           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    fits_fm        BOOLEAN NOT NULL,
    fits_esim      BOOLEAN NOT NULL,
    period         TEXT NOT NULL CHECK (period IN ('month', 'quarter', 'year', 'custom')),
    validity_days  INTEGER NOT NULL CHECK (validity_days > 0),
    -- NULL means unlimited
    data_bytes     BIGINT CHECK (data_bytes >= 0),
    voice_minutes  INTEGER NOT NULL CHECK (voice_minutes >= 0),
    sms            INTEGER NOT NULL CHECK (sms >= 0),
    region         TEXT,
    status         TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX plans_status_id ON plans (status, id);

CREATE TABLE plan_countries (
    plan_id  TEXT NOT NULL REFERENCES plans (id),
    country  TEXT NOT NULL,
    PRIMARY KEY (plan_id, country)
);
CREATE INDEX plan_countries_country ON plan_countries (country, plan_id);

CREATE TABLE plan_prices (
    plan_id   TEXT NOT NULL REFERENCES plans (id),
    currency  TEXT NOT NULL,
    -- integer minor units
    amount    BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (plan_id, currency)
);
CREATE INDEX plan_prices_currency ON plan_prices (currency, plan_id);

-- One row, bumped in the same transaction as every catalog change: the ETag and the
-- in-process caches of every instance key on it.
CREATE TABLE catalog_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 1);

-- Device models added by operators; they take precedence over the shipped list.
CREATE TABLE devices (
    model_key       TEXT PRIMARY KEY,
    model           TEXT NOT NULL,
    esim_supported  BOOLEAN NOT NULL,
    note            TEXT,
    created_at      TIMESTAMP NOT NULL
);

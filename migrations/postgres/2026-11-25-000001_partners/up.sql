-- Partners (resellers, app backends, operators) and their API credentials.
-- Ids are UUID text and timestamps UTC `timestamp` so one diesel schema fits both backends.
CREATE TABLE partners (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    -- space-separated OAuth scopes the partner may request
    scopes      TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX partners_created_at_id ON partners (created_at, id);

CREATE TABLE partner_credentials (
    client_id    TEXT PRIMARY KEY,
    partner_id   TEXT NOT NULL REFERENCES partners (id),
    -- argon2id PHC string; the secret itself is never stored
    secret_hash  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);
CREATE INDEX partner_credentials_partner ON partner_credentials (partner_id);

-- Token signing keys generated when none are configured, shared by every instance.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    -- one generated key per algorithm: instances starting together converge on one row
    algorithm    TEXT NOT NULL UNIQUE,
    private_key  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

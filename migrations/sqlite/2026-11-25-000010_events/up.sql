-- What happened to a partner's resources, appended in the transaction that made the
-- change (an outbox): an event exists if and only if its change committed. `data` is
-- the resource as the API shows it (JSON); ids are UUIDv7, so they sort by time.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX events_by_partner ON events (partner_id, id);
CREATE INDEX events_by_age ON events (created_at);

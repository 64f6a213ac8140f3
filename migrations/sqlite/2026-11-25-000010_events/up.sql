-- What happened to a partner's resources, appended in the transaction that made the
-- change (an outbox): an event exists if and only if its change committed. `data` is
-- the resource as the API shows it (JSON). `seq` numbers a partner's events in commit
-- order: it is taken from the partner's counter row, whose lock the appending
-- transaction holds until it commits, so a reader paging by `seq` never skips one.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners(id),
    seq         BIGINT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    UNIQUE (partner_id, seq)
);
CREATE TABLE event_counters (
    partner_id  TEXT PRIMARY KEY REFERENCES partners(id),
    last_seq    BIGINT NOT NULL
);
CREATE INDEX events_by_age ON events (created_at);

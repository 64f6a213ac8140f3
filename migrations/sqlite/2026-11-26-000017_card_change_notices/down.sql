-- Nothing on SQLite: cards are not kept in memory there (other processes may write the
-- file unannounced), so no change needs announcing. The PostgreSQL migration of the same
-- name adds the announcing triggers.
SELECT 1;

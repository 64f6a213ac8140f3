DROP FUNCTION simrenew_decline();
DELETE FROM event_counters WHERE last_seq = 0;

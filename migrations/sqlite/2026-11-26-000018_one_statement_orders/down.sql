DELETE FROM event_counters WHERE last_seq = 0;

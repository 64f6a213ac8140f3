-- Every partner has an event counter from its creation on (partners made from now on get
-- theirs in the transaction that creates them), so that a partner's first event is
-- numbered like every other: one statement that takes the next number and writes it.
INSERT INTO event_counters (partner_id, last_seq)
SELECT p.id, 0 FROM partners p
WHERE NOT EXISTS (SELECT 1 FROM event_counters c WHERE c.partner_id = p.id);

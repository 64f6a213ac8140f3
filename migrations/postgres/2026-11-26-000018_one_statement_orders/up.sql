-- Every partner has an event counter from its creation on (partners made from now on get
-- theirs in the transaction that creates them), so that a partner's first event is
-- numbered like every other: one statement that takes the next number and writes it.
INSERT INTO event_counters (partner_id, last_seq)
SELECT p.id, 0 FROM partners p
WHERE NOT EXISTS (SELECT 1 FROM event_counters c WHERE c.partner_id = p.id);

-- A usual wallet order is written by one statement (fulfilment::checkout's
-- WalletOrderStatement) that must write all of it or nothing: when its key was taken or
-- its money was not there, it calls this, and the error undoes the whole statement. The
-- message is what the service recognises; nothing else raises it.
CREATE FUNCTION simrenew_decline() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'simrenew: declined';
END
$$;

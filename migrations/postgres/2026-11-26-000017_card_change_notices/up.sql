-- Every change to a card or its terms is announced on `simrenew_cards` with the card's
-- ICCID when it commits, whoever makes it (any instance, the CLI, an operator's SQL):
-- instances keep recent cards in memory and retire a copy when its card is announced.
-- A new card needs no announcement: a card not found is never kept.
CREATE FUNCTION simrenew_card_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('simrenew_cards', NEW.iccid);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('simrenew_cards', OLD.iccid);
    ELSE
        PERFORM pg_notify('simrenew_cards', OLD.iccid);
        IF NEW.iccid IS DISTINCT FROM OLD.iccid THEN
            PERFORM pg_notify('simrenew_cards', NEW.iccid);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cards_changed AFTER UPDATE OR DELETE ON cards
    FOR EACH ROW EXECUTE FUNCTION simrenew_card_changed();
CREATE TRIGGER terms_changed AFTER INSERT OR UPDATE OR DELETE ON terms
    FOR EACH ROW EXECUTE FUNCTION simrenew_card_changed();

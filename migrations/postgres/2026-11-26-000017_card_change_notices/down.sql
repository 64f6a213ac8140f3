DROP TRIGGER terms_changed ON terms;
DROP TRIGGER cards_changed ON cards;
DROP FUNCTION simrenew_card_changed();

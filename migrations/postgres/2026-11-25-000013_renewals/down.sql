DROP TABLE subscriptions;
DELETE FROM activations WHERE mode = 'in_place';
ALTER TABLE activations DROP CONSTRAINT activations_mode_check;
ALTER TABLE activations ADD CONSTRAINT activations_mode_check
    CHECK (mode IN ('esim_profile', 'ota'));
DROP INDEX orders_scheduled;
ALTER TABLE orders DROP COLUMN start_at;

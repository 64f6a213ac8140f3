DROP TABLE payment_events;
ALTER TABLE idempotency_keys DROP COLUMN resource_id;
DROP INDEX orders_provider_payment;
ALTER TABLE orders DROP COLUMN provider_refund_id;
ALTER TABLE orders DROP COLUMN next_action;
ALTER TABLE orders DROP COLUMN provider_payment_id;
ALTER TABLE orders DROP COLUMN provider;

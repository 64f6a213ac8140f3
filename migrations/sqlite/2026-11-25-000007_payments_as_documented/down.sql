ALTER TABLE orders ADD COLUMN provider_refund_id TEXT;
DROP TABLE refunds;
DROP INDEX orders_provider_session;
UPDATE orders SET provider_payment_id = provider_session_id WHERE provider_session_id IS NOT NULL;
ALTER TABLE orders DROP COLUMN payment_issue;
ALTER TABLE orders DROP COLUMN provider_closed_at;
ALTER TABLE orders DROP COLUMN provider_attempt;
ALTER TABLE orders DROP COLUMN provider_session_id;

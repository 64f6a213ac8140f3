-- External payments: which provider holds an order's payment, what the client must do
-- next, the provider's refund, and the provider events already applied.
ALTER TABLE orders ADD COLUMN provider TEXT;
ALTER TABLE orders ADD COLUMN provider_payment_id TEXT;
-- JSON: {"type": "redirect_to_url", "url": …} or {"type": "display_qr_code", "data": …}
ALTER TABLE orders ADD COLUMN next_action TEXT;
ALTER TABLE orders ADD COLUMN provider_refund_id TEXT;
CREATE INDEX orders_provider_payment ON orders (provider, provider_payment_id);

-- The order (or other resource) a multi-step idempotent request has created so far, so
-- that a retry resumes it instead of starting over.
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;

CREATE TABLE payment_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    order_id     TEXT,
    kind         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- External payments as Stripe documents them: a Checkout Session and the PaymentIntent
-- behind it are kept apart, a new provider idempotency key is used after a provider
-- failure, the provider payment is closed when its order ends, a payment that does not
-- match its order is recorded, and refunds are tracked objects.
ALTER TABLE orders ADD COLUMN provider_session_id TEXT;
ALTER TABLE orders ADD COLUMN provider_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN provider_closed_at TIMESTAMP;
ALTER TABLE orders ADD COLUMN payment_issue TEXT;
-- Checkout Session ids were kept as the payment id: they are session ids.
UPDATE orders SET provider_session_id = provider_payment_id, provider_payment_id = NULL
    WHERE provider_payment_id LIKE 'cs\_%' ESCAPE '\';
CREATE INDEX orders_provider_session ON orders (provider, provider_session_id);

CREATE TABLE refunds (
    id                   TEXT PRIMARY KEY,
    order_id             TEXT NOT NULL REFERENCES orders (id),
    provider             TEXT NOT NULL,
    -- the payment refunded (normally the order's; another one when a mismatching payment
    -- is given back)
    provider_payment_id  TEXT NOT NULL,
    provider_refund_id   TEXT,
    amount               BIGINT NOT NULL CHECK (amount > 0),
    currency             TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('requested', 'pending', 'succeeded', 'failed')),
    -- simrenew asked for it, or it was made at the provider (its dashboard) and learnt from events
    origin               TEXT NOT NULL CHECK (origin IN ('simrenew', 'provider')),
    failure_reason       TEXT,
    attempts             INTEGER NOT NULL,
    next_attempt_at      TIMESTAMP,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX refunds_provider_refund ON refunds (provider, provider_refund_id);
CREATE INDEX refunds_order ON refunds (order_id);
CREATE INDEX refunds_due ON refunds (status, next_attempt_at);

-- Replaced by the refunds table.
ALTER TABLE orders DROP COLUMN provider_refund_id;

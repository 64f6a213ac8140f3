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
    WHERE substr(provider_payment_id, 1, 3) = 'cs_';
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
    -- failed attempts so far (bounded), and the provider idempotency key's attempt number,
    -- which changes only after the provider answered a failure (it replays saved answers)
    attempts             INTEGER NOT NULL,
    key_attempt          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at      TIMESTAMP,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX refunds_provider_refund ON refunds (provider, provider_refund_id);
CREATE INDEX refunds_order ON refunds (order_id);
CREATE INDEX refunds_due ON refunds (status, next_attempt_at);

-- Refunds decided before this version become refund objects: those made (their
-- provider id kept), and those still owed (closed orders whose external payment
-- succeeded), which the refund sweep now makes. The order id is the refund's id: an
-- order had at most one such refund.
INSERT INTO refunds (id, order_id, provider, provider_payment_id, provider_refund_id, amount,
                     currency, status, origin, failure_reason, attempts, key_attempt,
                     next_attempt_at, created_at, updated_at)
    SELECT id, id, provider, COALESCE(provider_payment_id, provider_session_id),
           provider_refund_id, COALESCE(refunded_amount, amount), currency, 'succeeded',
           'simrenew', NULL, 0, 0, NULL, COALESCE(refunded_at, updated_at),
           COALESCE(refunded_at, updated_at)
    FROM orders
    WHERE provider IS NOT NULL AND payment_status = 'refunded';
INSERT INTO refunds (id, order_id, provider, provider_payment_id, provider_refund_id, amount,
                     currency, status, origin, failure_reason, attempts, key_attempt,
                     next_attempt_at, created_at, updated_at)
    SELECT id, id, provider, COALESCE(provider_payment_id, provider_session_id), NULL,
           amount, currency, 'requested', 'simrenew', NULL, 0, 0, updated_at, updated_at,
           updated_at
    FROM orders
    WHERE provider IS NOT NULL AND payment_status = 'succeeded'
      AND status IN ('cancelled', 'expired', 'failed');

-- Replaced by the refunds table.
ALTER TABLE orders DROP COLUMN provider_refund_id;

DROP INDEX orders_provider_payment;
CREATE INDEX orders_provider_payment ON orders (provider, provider_payment_id);
DROP INDEX orders_provider_session;
CREATE INDEX orders_provider_session ON orders (provider, provider_session_id);

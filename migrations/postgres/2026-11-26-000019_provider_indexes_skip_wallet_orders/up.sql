-- Orders are looked up by provider reference only for provider payments: wallet orders
-- (provider NULL) leave these two indexes, so writing one updates two indexes fewer.
DROP INDEX orders_provider_payment;
CREATE INDEX orders_provider_payment ON orders (provider, provider_payment_id) WHERE provider IS NOT NULL;
DROP INDEX orders_provider_session;
CREATE INDEX orders_provider_session ON orders (provider, provider_session_id) WHERE provider IS NOT NULL;

DROP TABLE idempotency_keys;
DROP TABLE receipt_counters;
DROP TABLE orders;
DROP TABLE ledger_entries;
DROP TABLE wallet_balances;

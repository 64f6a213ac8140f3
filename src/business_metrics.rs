//! Business metrics beside the HTTP ones: what happened to orders, money, payment
//! webhooks, idempotency keys, sweeps, webhook deliveries and the connection pool.
//!
//! A change written inside a database call is counted only if that call commits: the
//! store that writes it calls [`on_commit`], which keeps the fact on the blocking thread
//! running the call, and `Db` hands the facts to [`BusinessMetrics::count`] after a
//! commit or drops them after a rollback. So a retried or rolled-back order is never
//! counted twice, and no capability needs the metrics handle to say what it wrote.
//! Anything that happens outside a database call is counted directly.

use std::cell::RefCell;
use std::time::Duration;

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// One thing that happened, with the label values it is counted under. Labels are
/// `&'static str` taken from the stored enums' names, so no client text becomes a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// An order was created in, or moved to, `status`.
    OrderEntered {
        status: &'static str,
        payment_method: &'static str,
    },
    /// An order was paid: money taken from a wallet or captured by a provider.
    OrderPaid {
        currency: &'static str,
        payment_method: &'static str,
        minor_units: i64,
    },
    /// A wallet ledger entry: a credit, a debit for an order, a refund to the wallet.
    WalletMoved {
        currency: &'static str,
        kind: &'static str,
        minor_units: i64,
    },
    /// A payment provider's webhook was answered with `outcome`.
    PaymentWebhook { outcome: &'static str },
    /// A request with an `Idempotency-Key` was answered from an earlier one (`replayed`),
    /// or refused because the key was used with another body or is still running.
    Idempotency { outcome: &'static str },
    /// A housekeeping step finished (`ok`) or failed (`error`).
    Sweep {
        sweep: &'static str,
        result: &'static str,
    },
    /// A subscription renewal, by result (`renewed`, `failed`, `lapsed`).
    Renewals { result: &'static str, count: u64 },
    /// A webhook delivery attempt to a partner's endpoint, by outcome.
    DeliveryAttempt { outcome: &'static str },
    /// A delivery that succeeded, `lag` after its event was written.
    Delivered { lag: Duration },
}

thread_local! {
    /// Facts written by the database call running on this blocking thread, not yet
    /// committed. A call runs to its end on one thread, so no two calls share it.
    static UNCOMMITTED: RefCell<Vec<Fact>> = const { RefCell::new(Vec::new()) };
}

/// Counts `fact` when the database call it was written in commits.
pub fn on_commit(fact: Fact) {
    UNCOMMITTED.with(|facts| facts.borrow_mut().push(fact));
}

/// Takes the facts of the call that just ended on this thread (for `Db`).
pub fn take_uncommitted() -> Vec<Fact> {
    UNCOMMITTED.with(|facts| std::mem::take(&mut *facts.borrow_mut()))
}

/// The counters, registered on the same registry as the HTTP metrics.
#[derive(Clone)]
pub struct BusinessMetrics {
    orders: IntCounterVec,
    order_payments: IntCounterVec,
    wallet_movements: IntCounterVec,
    payment_webhooks: IntCounterVec,
    idempotency: IntCounterVec,
    sweeps: IntCounterVec,
    renewals: IntCounterVec,
    delivery_attempts: IntCounterVec,
    delivery_lag: Histogram,
    pool_wait: Histogram,
    pool_timeouts: IntCounter,
    card_reads: IntCounterVec,
    wallet_order_paths: IntCounterVec,
    /// Read from the database when `/metrics` is scraped.
    pub wallet_balances: IntGaugeVec,
    pub settlement_lag: Gauge,
    pub delivery_backlog: IntGauge,
    pub delivery_backlog_age: Gauge,
    pub pool_connections: IntGaugeVec,
    pub readings_ok: IntGauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition")
}

impl std::fmt::Debug for BusinessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusinessMetrics")
    }
}

impl Default for BusinessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl BusinessMetrics {
    pub fn new() -> Self {
        let seconds_buckets = vec![
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        Self {
            orders: counter(
                "simrenew_orders_total",
                "Orders created in or moved to a status, by payment method.",
                &["status", "payment_method"],
            ),
            order_payments: counter(
                "simrenew_order_payments_minor_units_total",
                "Money paid for orders, in the currency's minor units.",
                &["currency", "payment_method"],
            ),
            wallet_movements: counter(
                "simrenew_wallet_movements_minor_units_total",
                "Wallet ledger entries by kind (credit, debit, refund), absolute minor units.",
                &["currency", "kind"],
            ),
            payment_webhooks: counter(
                "simrenew_payment_webhooks_total",
                "Payment provider webhooks by outcome (paid, duplicate, invalid_signature, …).",
                &["outcome"],
            ),
            idempotency: counter(
                "simrenew_idempotency_keys_total",
                "Requests with an Idempotency-Key answered from an earlier one or refused.",
                &["outcome"],
            ),
            sweeps: counter(
                "simrenew_sweep_runs_total",
                "Housekeeping steps run, by step and result (ok, error).",
                &["sweep", "result"],
            ),
            renewals: counter(
                "simrenew_subscription_renewals_total",
                "Subscription renewals made by the sweep, by result.",
                &["result"],
            ),
            delivery_attempts: counter(
                "simrenew_webhook_delivery_attempts_total",
                "Webhook delivery attempts to partners' endpoints, by outcome.",
                &["outcome"],
            ),
            delivery_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "simrenew_webhook_delivery_lag_seconds",
                    "From an event's writing to its successful delivery.",
                )
                .buckets(seconds_buckets.clone()),
            )
            .expect("a valid metric definition"),
            pool_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "simrenew_db_pool_wait_seconds",
                    "Time a database call waited for a pooled connection.",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
                ]),
            )
            .expect("a valid metric definition"),
            pool_timeouts: IntCounter::new(
                "simrenew_db_pool_timeouts_total",
                "Database calls that found no pooled connection within the acquire timeout.",
            )
            .expect("a valid metric definition"),
            card_reads: counter(
                "simrenew_card_reads_total",
                "Card and balance reads by where the card came from (memory, database).",
                &["source"],
            ),
            wallet_order_paths: counter(
                "simrenew_wallet_order_paths_total",
                "Wallet orders by how they were written: one_statement (PostgreSQL's usual \
                 case), or general (SQLite, and what one statement declines).",
                &["path"],
            ),
            wallet_balances: IntGaugeVec::new(
                Opts::new(
                    "simrenew_wallet_balance_minor_units",
                    "Money held in partners' wallets, by currency, read at scrape time.",
                ),
                &["currency"],
            )
            .expect("a valid metric definition"),
            settlement_lag: Gauge::new(
                "simrenew_payment_settlement_lag_seconds",
                "How long the oldest order awaiting payment has been past its expiry \
                 (0 when none is): expiry sweeps or provider webhooks are behind.",
            )
            .expect("a valid metric definition"),
            delivery_backlog: IntGauge::new(
                "simrenew_webhook_deliveries_due",
                "Webhook deliveries due now and not yet made.",
            )
            .expect("a valid metric definition"),
            delivery_backlog_age: Gauge::new(
                "simrenew_webhook_delivery_backlog_age_seconds",
                "How long the oldest due webhook delivery has waited (0 when none is due).",
            )
            .expect("a valid metric definition"),
            pool_connections: IntGaugeVec::new(
                Opts::new(
                    "simrenew_db_pool_connections",
                    "Pooled database connections by state (idle, in_use).",
                ),
                &["state"],
            )
            .expect("a valid metric definition"),
            readings_ok: IntGauge::new(
                "simrenew_readings_ok",
                "1 when this scrape's database readings are fresh, 0 when they are the last ones.",
            )
            .expect("a valid metric definition"),
        }
    }

    /// Adds every metric to `registry` (the one `/metrics` serves).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.orders.clone()),
            Box::new(self.order_payments.clone()),
            Box::new(self.wallet_movements.clone()),
            Box::new(self.payment_webhooks.clone()),
            Box::new(self.idempotency.clone()),
            Box::new(self.sweeps.clone()),
            Box::new(self.renewals.clone()),
            Box::new(self.delivery_attempts.clone()),
            Box::new(self.delivery_lag.clone()),
            Box::new(self.pool_wait.clone()),
            Box::new(self.pool_timeouts.clone()),
            Box::new(self.card_reads.clone()),
            Box::new(self.wallet_order_paths.clone()),
            Box::new(self.wallet_balances.clone()),
            Box::new(self.settlement_lag.clone()),
            Box::new(self.delivery_backlog.clone()),
            Box::new(self.delivery_backlog_age.clone()),
            Box::new(self.pool_connections.clone()),
            Box::new(self.readings_ok.clone()),
        ];
        collectors
            .into_iter()
            .try_for_each(|collector| registry.register(collector))
    }

    pub fn count(&self, fact: Fact) {
        match fact {
            Fact::OrderEntered {
                status,
                payment_method,
            } => self
                .orders
                .with_label_values(&[status, payment_method])
                .inc(),
            Fact::OrderPaid {
                currency,
                payment_method,
                minor_units,
            } => self
                .order_payments
                .with_label_values(&[currency, payment_method])
                .inc_by(minor_units.unsigned_abs()),
            Fact::WalletMoved {
                currency,
                kind,
                minor_units,
            } => self
                .wallet_movements
                .with_label_values(&[currency, kind])
                .inc_by(minor_units.unsigned_abs()),
            Fact::PaymentWebhook { outcome } => {
                self.payment_webhooks.with_label_values(&[outcome]).inc()
            }
            Fact::Idempotency { outcome } => self.idempotency.with_label_values(&[outcome]).inc(),
            Fact::Sweep { sweep, result } => self.sweeps.with_label_values(&[sweep, result]).inc(),
            Fact::Renewals { result, count } => {
                self.renewals.with_label_values(&[result]).inc_by(count)
            }
            Fact::DeliveryAttempt { outcome } => {
                self.delivery_attempts.with_label_values(&[outcome]).inc()
            }
            Fact::Delivered { lag } => self.delivery_lag.observe(lag.as_secs_f64()),
        }
    }

    pub fn count_all(&self, facts: Vec<Fact>) {
        facts.into_iter().for_each(|fact| self.count(fact));
    }

    /// Counts a sweep step's result (`ok` or `error`) and hands it back.
    pub fn sweep<T, E>(&self, sweep: &'static str, result: Result<T, E>) -> Result<T, E> {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.count(Fact::Sweep {
            sweep,
            result: outcome,
        });
        result
    }

    /// For the pool's event handler.
    pub fn pool_waited(&self, waited: Duration) {
        self.pool_wait.observe(waited.as_secs_f64());
    }

    pub fn pool_timed_out(&self) {
        self.pool_timeouts.inc();
    }

    /// A wallet order request, written by one statement or by the general path.
    pub fn wallet_order_path(&self, one_statement: bool) {
        let path = if one_statement {
            "one_statement"
        } else {
            "general"
        };
        self.wallet_order_paths.with_label_values(&[path]).inc();
    }

    /// A card read for a partner, from memory or from the database.
    pub fn card_read(&self, from_memory: bool) {
        let source = if from_memory { "memory" } else { "database" };
        self.card_reads.with_label_values(&[source]).inc();
    }
}

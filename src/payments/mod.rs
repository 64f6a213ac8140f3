//! External payments (bank card, Alipay, WeChat Pay): a provider creates the payment,
//! the client follows its `next_action`, and the provider's signed webhook settles the
//! order. The provider call is made outside any database transaction, after the order
//! exists, so money is never taken without an order.

pub mod events;
pub mod refunds;
pub mod sandbox;
pub mod stripe;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{Currency, MinorUnits, NextAction, PaymentMethod};

/// What a provider is asked to collect: one order's price, by one method.
#[derive(Debug, Clone, Copy)]
pub struct PaymentRequest<'a> {
    pub order_id: &'a str,
    pub iccid: &'a str,
    pub method: PaymentMethod,
    pub amount: MinorUnits,
    pub currency: Currency,
    /// How many earlier attempts the provider failed (5xx, timeout): each attempt uses
    /// its own provider idempotency key, since the provider replays a saved failure.
    pub attempt: i32,
    /// When the provider's payment page must stop taking money.
    pub expires_at: DateTime<Utc>,
}

/// A payment the provider created, and what the payer must do next.
#[derive(Debug, Clone)]
pub struct CreatedPayment {
    /// The payment that takes the money (a PaymentIntent), when it exists already.
    pub payment_id: Option<String>,
    /// The hosted page it is taken on (a Checkout Session), for card payments.
    pub session_id: Option<String>,
    pub next_action: NextAction,
}

/// The provider payment of an order that ended unpaid, to be closed so that nobody pays it.
#[derive(Debug, Clone, Copy)]
pub struct CloseRequest<'a> {
    pub order_id: &'a str,
    pub payment_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

/// What a provider is asked to give back: `amount` of one payment.
#[derive(Debug, Clone, Copy)]
pub struct RefundRequest<'a> {
    /// Our refund's id: the provider's idempotency key derives from it.
    pub refund_id: &'a str,
    pub order_id: &'a str,
    pub payment_id: &'a str,
    pub amount: MinorUnits,
    pub attempt: i32,
}

/// Where a refund stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderRefundStatus {
    /// Accepted, not yet final (Alipay and WeChat Pay refunds are asynchronous); an
    /// event tells the outcome.
    Pending,
    Succeeded,
    Failed,
}

/// A refund as the provider reports it.
#[derive(Debug, Clone)]
pub struct ProviderRefund {
    pub refund_id: String,
    pub status: ProviderRefundStatus,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Down, timing out or overloaded: retrying later is right.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// It refused the request: retrying the same will not help.
    #[error("payment provider refused: {0}")]
    Rejected(String),
    /// No answer came (a timeout, a lost connection, a key still in use): the provider
    /// may have applied the request, so a retry must reuse its idempotency key.
    #[error("payment provider did not answer: {0}")]
    Unanswered(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid webhook signature: {0}")]
    BadSignature(&'static str),
    #[error("unreadable webhook event: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Money was taken: `amount` in `currency` (as the provider names it; `None` when it
    /// names no currency this service knows).
    Succeeded {
        amount: MinorUnits,
        currency: Option<Currency>,
    },
    /// The payment can no longer be made (the page expired, the intent was cancelled,
    /// a delayed payment failed).
    Failed,
    /// One attempt was declined; the payer can still pay (the provider says why).
    AttemptFailed { reason: String },
    /// A refund of one of our payments changed (also refunds made at the provider).
    Refund {
        refund_id: String,
        /// Our refund's id, when the refund is ours (its metadata).
        our_refund_id: Option<String>,
        status: ProviderRefundStatus,
        amount: MinorUnits,
        failure_reason: Option<String>,
    },
    /// Any other event type: acknowledged and ignored.
    Other(String),
}

impl EventKind {
    /// The stored name of the event's meaning.
    pub fn label(&self) -> &str {
        match self {
            EventKind::Succeeded { .. } => "succeeded",
            EventKind::Failed => "failed",
            EventKind::AttemptFailed { .. } => "attempt_failed",
            EventKind::Refund { .. } => "refund",
            EventKind::Other(kind) => kind,
        }
    }
}

/// A provider's event, verified.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    pub event_id: String,
    pub kind: EventKind,
    /// The payment (PaymentIntent) it is about, when it names one.
    pub payment_id: Option<String>,
    /// The Checkout Session it is about, for card payments.
    pub session_id: Option<String>,
    /// Our order id, from the object's metadata, when present.
    pub order_id: Option<String>,
}

pub enum Provider {
    Stripe(stripe::Stripe),
    Sandbox(sandbox::Sandbox),
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Stripe(_) => "stripe",
            Provider::Sandbox(_) => "sandbox",
        }
    }

    pub async fn create_payment(
        &self,
        order: &PaymentRequest<'_>,
    ) -> Result<CreatedPayment, ProviderError> {
        match self {
            Provider::Stripe(stripe) => stripe.create_payment(order).await,
            Provider::Sandbox(sandbox) => Ok(sandbox.create_payment(order)),
        }
    }

    pub async fn refund(
        &self,
        refund: &RefundRequest<'_>,
    ) -> Result<ProviderRefund, ProviderError> {
        match self {
            Provider::Stripe(stripe) => stripe.refund(refund).await,
            Provider::Sandbox(sandbox) => Ok(sandbox.refund(refund)),
        }
    }

    /// Closes an unpaid payment so that a late payer cannot pay it. `Ok(false)` when the
    /// provider says it cannot be closed any more (it was paid meanwhile: the success
    /// event follows and is refunded).
    pub async fn close(&self, payment: &CloseRequest<'_>) -> Result<bool, ProviderError> {
        match self {
            Provider::Stripe(stripe) => stripe.close(payment).await,
            Provider::Sandbox(_) => Ok(true),
        }
    }
}

/// Which provider takes which method, in which currencies. Methods without one answer
/// `422 payment_method_unavailable`.
#[derive(Default)]
pub struct Payments {
    providers: Vec<Provider>,
    routes: HashMap<PaymentMethod, usize>,
    /// Currencies a method takes; a method not listed takes any.
    currencies: HashMap<PaymentMethod, Vec<Currency>>,
    /// Unpaid orders expire after this.
    pub order_ttl: std::time::Duration,
}

impl Payments {
    pub fn new(
        order_ttl: std::time::Duration,
        currencies: HashMap<PaymentMethod, Vec<Currency>>,
    ) -> Self {
        Self {
            order_ttl,
            currencies,
            ..Default::default()
        }
    }

    /// Why `method` cannot take `currency` here, if it cannot.
    pub fn refuses_currency(&self, method: PaymentMethod, currency: Currency) -> Option<String> {
        let taken = self.currencies.get(&method)?;
        if taken.contains(&currency) {
            return None;
        }
        let names: Vec<&str> = taken.iter().map(|c| c.code()).collect();
        Some(format!(
            "`{method}` payments here take {}; not {currency}",
            names.join(", ")
        ))
    }

    /// Adds a provider for `methods`.
    pub fn with(mut self, provider: Provider, methods: &[PaymentMethod]) -> Self {
        self.providers.push(provider);
        let index = self.providers.len() - 1;
        for method in methods {
            self.routes.insert(*method, index);
        }
        self
    }

    pub fn for_method(&self, method: PaymentMethod) -> Option<&Provider> {
        self.routes.get(&method).map(|i| &self.providers[*i])
    }

    pub fn by_name(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name() == name)
    }

    pub fn sandbox_enabled(&self) -> bool {
        self.by_name("sandbox").is_some()
    }
}

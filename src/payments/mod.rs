//! External payments (bank card, Alipay, WeChat Pay): a provider creates the payment,
//! the client follows its `next_action`, and the provider's signed webhook settles the
//! order. The provider call is made outside any database transaction, after the order
//! exists, so money is never taken without an order.

pub mod events;
pub mod sandbox;
pub mod stripe;

use std::collections::HashMap;

use crate::domain::{Currency, MinorUnits, NextAction, PaymentMethod};

/// What a provider is asked to collect: one order's price, by one method.
#[derive(Debug, Clone, Copy)]
pub struct PaymentRequest<'a> {
    pub order_id: &'a str,
    pub iccid: &'a str,
    pub method: PaymentMethod,
    pub amount: MinorUnits,
    pub currency: Currency,
}

/// What a provider is asked to give back: the whole payment of one order.
#[derive(Debug, Clone, Copy)]
pub struct RefundRequest<'a> {
    pub order_id: &'a str,
    pub provider_payment_id: Option<&'a str>,
}

/// A payment the provider created, and what the payer must do next.
#[derive(Debug, Clone)]
pub struct CreatedPayment {
    pub provider_payment_id: String,
    pub next_action: NextAction,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Down, timing out or overloaded: retrying later is right.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// It refused the request: retrying the same will not help.
    #[error("payment provider refused: {0}")]
    Rejected(String),
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
    Succeeded,
    Failed,
    /// Any other event type: acknowledged and ignored.
    Other(String),
}

/// A provider's event, verified.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    pub event_id: String,
    pub kind: EventKind,
    pub provider_payment_id: String,
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

    pub async fn refund(&self, order: &RefundRequest<'_>) -> Result<String, ProviderError> {
        match self {
            Provider::Stripe(stripe) => stripe.refund(order).await,
            Provider::Sandbox(sandbox) => Ok(sandbox.refund(order)),
        }
    }
}

/// Which provider takes which method. Methods without one answer
/// `422 payment_method_unavailable`.
#[derive(Default)]
pub struct Payments {
    providers: Vec<Provider>,
    routes: HashMap<PaymentMethod, usize>,
    /// Unpaid orders expire after this.
    pub order_ttl: std::time::Duration,
}

impl Payments {
    pub fn new(order_ttl: std::time::Duration) -> Self {
        Self {
            order_ttl,
            ..Default::default()
        }
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

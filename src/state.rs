//! The application's shared state: the database, the clock, the settings and each
//! capability's long-lived parts, built once at start. `app` registers each part with
//! actix on its own; handlers take the parts they need, never the whole.

use crate::verification::sms::Sms;
use crate::verification::{Verification, VerificationKey};
use std::sync::Arc;

use crate::auth::keys::KeyRing;
use crate::auth::rate_limit::TokenRateLimits;
use crate::auth::tokens::{TokenPolicy, TokenService};
use crate::auth::{secrets, Authenticator};
use crate::cards::cache::CardCache;
use crate::catalog::CatalogCache;
use crate::clock::Clock;
use crate::config::{PaymentSettings, ProviderKind, Settings};
use crate::db::Db;
use crate::events::Webhooks;
use crate::payments::{sandbox::Sandbox, stripe::Stripe, Payments, Provider};
use crate::rate_limit::PartnerRateLimits;

/// Everything requests and sweeps share. Holds no per-request state: instances are
/// interchangeable. Cheap to clone: the parts are shared.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub auth: Arc<Authenticator>,
    pub catalog: Arc<CatalogCache>,
    pub cards: Arc<CardCache>,
    pub payments: Arc<Payments>,
    pub webhooks: Arc<Webhooks>,
    pub verification: Arc<Verification>,
}

impl AppState {
    /// Prepares everything a request may need. Blocking: it may read or create the
    /// token signing key in the database, so the schema must be migrated first.
    pub fn load(settings: Settings, db: Db, clock: Clock) -> Result<Self, String> {
        let auth = &settings.auth;
        let keys = db
            .run_blocking(|conn| KeyRing::load(auth.algorithm, &auth.key_source, conn))
            .map_err(|e| format!("token signing keys: {e}"))?;
        let tokens = TokenService::new(
            keys,
            TokenPolicy {
                issuer: auth.issuer.clone(),
                audience: auth.audience.clone(),
                lifetime: auth.token_lifetime,
            },
        );
        let limits = TokenRateLimits::new(auth.token_rate_per_client, auth.token_rate_per_address);
        let partner_limits = PartnerRateLimits::new(auth.partner_quota, clock.clone());
        let authenticator = Authenticator::new(
            tokens,
            limits,
            partner_limits,
            auth.credential_check_interval,
        );
        secrets::warm_up();
        let payments = build_payments(&settings.payments)?;
        let webhooks = Webhooks::new(settings.webhooks.clone())?;
        let verification = Verification {
            sms: Sms::new(settings.sms.clone())?,
            key: VerificationKey::new(settings.sms.verification_key.clone()),
        };
        let cards = Arc::new(CardCache::new(settings.card_cache_size));
        Ok(Self {
            db,
            clock,
            settings: Arc::new(settings),
            auth: Arc::new(authenticator),
            catalog: Arc::new(CatalogCache::default()),
            cards,
            payments: Arc::new(payments),
            webhooks: Arc::new(webhooks),
            verification: Arc::new(verification),
        })
    }
}

fn build_payments(settings: &PaymentSettings) -> Result<Payments, String> {
    let methods_of = |kind: ProviderKind| -> Vec<_> {
        settings
            .routes
            .iter()
            .filter(|(_, p)| *p == kind)
            .map(|(m, _)| *m)
            .collect()
    };
    let mut payments = Payments::new(settings.order_ttl, settings.currencies.clone());
    if let Some(config) = &settings.stripe {
        payments = payments.with(
            Provider::Stripe(Stripe::new(config.clone())?),
            &methods_of(ProviderKind::Stripe),
        );
    }
    let sandboxed = methods_of(ProviderKind::Sandbox);
    if !sandboxed.is_empty() {
        payments = payments.with(Provider::Sandbox(Sandbox), &sandboxed);
    }
    Ok(payments)
}

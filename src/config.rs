//! Settings, read once from flags or the environment and validated before anything starts.
//! A bad value stops the process with one line naming the setting (clap does the naming).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::auth::keys::{JwtAlgorithm, KeySource, KeyText};
use crate::db::{DatabaseUrl, PoolOptions};
use crate::domain::{Currency, PaymentMethod};
use crate::rate_limit::RateQuota;

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `postgres://…` / `postgresql://…` for PostgreSQL; `sqlite://PATH`, a plain path or `:memory:` for SQLite.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://simrenew.db",
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Largest number of pooled database connections per process (default: twice the
    /// cores this process sees).
    #[arg(long, env = "SIMRENEW_DB_POOL_SIZE", default_value_t = default_db_pool_size(),
          value_parser = clap::value_parser!(u32).range(1..=500), global = true)]
    pub db_pool_size: u32,

    /// How long a request waits for a database connection before failing with 503, in milliseconds.
    #[arg(long, env = "SIMRENEW_DB_TIMEOUT_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub db_timeout_ms: u64,

    /// Cards kept in memory for balance and card reads, each for at most 1 s (0: none). A
    /// change made through this instance is in its next answer; one made elsewhere within 1 s.
    #[arg(long, env = "SIMRENEW_CARD_CACHE_SIZE", default_value_t = DEFAULT_CARD_CACHE_SIZE,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000), global = true)]
    pub card_cache_size: u64,
}

/// Pooled connections per process unless configured: twice the cores, the PostgreSQL
/// wiki's starting point for a database with as many cores as this host (set
/// `SIMRENEW_DB_POOL_SIZE` to twice the database's). More connections than the database
/// can run at once do not add throughput; they queue, and orders of one partner, which
/// wait for one another's wallet row, wait longer in that queue: measured on 2 cores,
/// wallet orders of one partner with 16 clients went from 0.65 of pgbench's rate with 6
/// connections (0.63 with 10) to 0.78 with 4.
pub fn default_db_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(2, 500)
}
/// Cards kept in memory unless configured: about 1 KiB each.
pub const DEFAULT_CARD_CACHE_SIZE: u64 = 20_000;

impl DatabaseArgs {
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_connections: self.db_pool_size,
            acquire_timeout: Duration::from_millis(self.db_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "SIMRENEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `simrenew=debug,actix_web=info`.
    #[arg(long, env = "SIMRENEW_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver, e.g.
    /// `http://otel-collector:4318`: request spans are exported to `<url>/v1/traces`
    /// (protobuf). Unset: no traces leave the process.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// How access tokens are signed and checked.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// The one algorithm tokens are signed and accepted with.
    #[arg(long, env = "SIMRENEW_JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::EdDsa, global = true)]
    pub jwt_algorithm: JwtAlgorithm,

    /// File with the signing key: a PKCS#8 PEM private key (EdDSA, RS256) or the HS256
    /// secret. Without it (and without SIMRENEW_JWT_SIGNING_KEY) a key is generated once
    /// and kept in the database.
    #[arg(long, env = "SIMRENEW_JWT_SIGNING_KEY_FILE", global = true)]
    pub jwt_signing_key_file: Option<PathBuf>,

    /// The signing key itself, for platforms that inject secrets as variables.
    #[arg(
        long,
        env = "SIMRENEW_JWT_SIGNING_KEY",
        hide_env_values = true,
        global = true
    )]
    pub jwt_signing_key: Option<String>,

    /// Comma-separated files with previous public keys (PEM) or HS256 secrets whose tokens
    /// are still accepted during a rotation.
    #[arg(
        long,
        env = "SIMRENEW_JWT_PREVIOUS_KEY_FILES",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_previous_key_files: Vec<PathBuf>,

    /// `iss` of issued tokens, required on verified ones.
    #[arg(
        long,
        env = "SIMRENEW_JWT_ISSUER",
        default_value = "simrenew",
        global = true
    )]
    pub jwt_issuer: String,

    /// `aud` of issued tokens, required on verified ones.
    #[arg(
        long,
        env = "SIMRENEW_JWT_AUDIENCE",
        default_value = "simrenew-api",
        global = true
    )]
    pub jwt_audience: String,

    /// Access token lifetime in seconds.
    #[arg(long, env = "SIMRENEW_TOKEN_TTL_S", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub token_ttl_s: u64,

    /// How long a credential check is cached, in seconds: the longest a revoked
    /// credential's or a suspended partner's token keeps working.
    #[arg(long, env = "SIMRENEW_CREDENTIAL_CHECK_S", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300), global = true)]
    pub credential_check_s: u64,

    /// Token requests allowed per client id and source address (IPv6: per /64) per
    /// minute (per process); kept per address so that a stranger guessing a client's
    /// secret from elsewhere cannot lock its owner out.
    #[arg(
        long,
        env = "SIMRENEW_TOKEN_RATE_PER_CLIENT",
        default_value = "20",
        global = true
    )]
    pub token_rate_per_client: NonZeroU32,

    /// Token requests allowed per source address (IPv6: per /64) per minute (per process).
    #[arg(
        long,
        env = "SIMRENEW_TOKEN_RATE_PER_ADDRESS",
        default_value = "120",
        global = true
    )]
    pub token_rate_per_address: NonZeroU32,

    /// Requests a second each partner may make to the authenticated operations, per
    /// process (a partner's own quota, set through the admin API, replaces it).
    #[arg(long, env = "SIMRENEW_RATE_LIMIT_PER_S", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::rate_limit::MAX_PER_SECOND)),
          global = true)]
    pub rate_limit_per_s: u32,

    /// Requests each partner may make at once after a quiet spell, per process.
    #[arg(long, env = "SIMRENEW_RATE_LIMIT_BURST", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::rate_limit::MAX_BURST)),
          global = true)]
    pub rate_limit_burst: u32,
}

fn read_key_file(path: &Path, setting: &str) -> Result<KeyText, String> {
    std::fs::read_to_string(path)
        .map(KeyText)
        .map_err(|e| format!("{setting}: cannot read {}: {e}", path.display()))
}

impl AuthArgs {
    pub fn settings(&self) -> Result<AuthSettings, String> {
        let signing = match (&self.jwt_signing_key_file, &self.jwt_signing_key) {
            (Some(_), Some(_)) => {
                return Err(
                    "set SIMRENEW_JWT_SIGNING_KEY_FILE or SIMRENEW_JWT_SIGNING_KEY, not both"
                        .into(),
                )
            }
            (Some(path), None) => Some(read_key_file(path, "SIMRENEW_JWT_SIGNING_KEY_FILE")?),
            (None, Some(text)) => Some(KeyText(text.clone())),
            (None, None) => None,
        };
        let previous = self
            .jwt_previous_key_files
            .iter()
            .map(|path| read_key_file(path, "SIMRENEW_JWT_PREVIOUS_KEY_FILES"))
            .collect::<Result<Vec<_>, _>>()?;
        let key_source = match signing {
            Some(signing) => KeySource::Configured { signing, previous },
            None if previous.is_empty() => KeySource::Generated,
            None => {
                return Err("SIMRENEW_JWT_PREVIOUS_KEY_FILES needs a configured signing key".into())
            }
        };
        Ok(AuthSettings {
            algorithm: self.jwt_algorithm,
            key_source,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            token_lifetime: Duration::from_secs(self.token_ttl_s),
            credential_check_interval: Duration::from_secs(self.credential_check_s),
            token_rate_per_client: self.token_rate_per_client,
            token_rate_per_address: self.token_rate_per_address,
            partner_quota: RateQuota::new(self.rate_limit_per_s, self.rate_limit_burst).ok_or(
                "SIMRENEW_RATE_LIMIT_PER_S and SIMRENEW_RATE_LIMIT_BURST must be 1 to 100000",
            )?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub algorithm: JwtAlgorithm,
    pub key_source: KeySource,
    pub issuer: String,
    pub audience: String,
    pub token_lifetime: Duration,
    pub credential_check_interval: Duration,
    pub token_rate_per_client: NonZeroU32,
    pub token_rate_per_address: NonZeroU32,
    /// Every partner's request quota unless its own is set.
    pub partner_quota: RateQuota,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::EdDsa,
            key_source: KeySource::Generated,
            issuer: "simrenew".into(),
            audience: "simrenew-api".into(),
            token_lifetime: Duration::from_secs(900),
            credential_check_interval: Duration::from_secs(5),
            token_rate_per_client: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            token_rate_per_address: NonZeroU32::new(120).unwrap_or(NonZeroU32::MIN),
            partner_quota: RateQuota::DEFAULT,
        }
    }
}

/// How renewals reach the cards.
#[derive(Debug, Clone, Args)]
pub struct ActivationArgs {
    /// The SM-DP+ server eSIM profiles are downloaded from (host, optionally :port).
    #[arg(long, env = "SIMRENEW_SMDP_ADDRESS", default_value = "smdp.simrenew.test",
          value_parser = parse_smdp_address, global = true)]
    pub smdp_address: String,

    /// Seconds between housekeeping sweeps (subscription renewals, scheduled orders
    /// starting, expiry notices, unpaid orders expiring, owed refunds), on every instance.
    #[arg(long, env = "SIMRENEW_SWEEP_INTERVAL_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub sweep_interval_s: u64,

    /// The seller named on receipts (交易凭证).
    #[arg(
        long,
        env = "SIMRENEW_SELLER_NAME",
        default_value = "simrenew",
        global = true
    )]
    pub seller_name: String,
}

/// A host name (and optional port): the part of an activation code between the `$`s.
fn parse_smdp_address(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(
            "must be a host name such as rsp.example.com (letters, digits, `.`, `-`, `:` only)"
                .into(),
        )
    }
}

/// Which payment provider takes which external method, and the providers' settings.
#[derive(Debug, Clone, Args)]
pub struct PaymentArgs {
    /// `method=provider` pairs, e.g. `card=stripe,alipay=stripe,wechat_pay=stripe`;
    /// providers: `stripe`, `sandbox`. Methods left out answer 422 payment_method_unavailable.
    #[arg(
        long,
        env = "SIMRENEW_PAYMENT_METHODS",
        default_value = "",
        global = true
    )]
    pub payment_methods: String,

    /// Stripe secret API key (sk_…); required when a method uses Stripe.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<String>,

    /// Stripe webhook signing secret (whsec_…); required when a method uses Stripe.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<String>,

    /// Stripe's API base URL.
    #[arg(
        long,
        env = "SIMRENEW_STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        global = true
    )]
    pub stripe_api_base: String,

    /// Where payers return after a provider's page.
    #[arg(
        long,
        env = "SIMRENEW_PAYMENT_RETURN_URL",
        default_value = "https://example.com/simrenew/return",
        global = true
    )]
    pub payment_return_url: String,

    /// How long a provider call may take, in milliseconds.
    #[arg(long, env = "SIMRENEW_PAYMENT_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub payment_timeout_ms: u64,

    /// Unpaid orders expire after this many seconds.
    #[arg(long, env = "SIMRENEW_ORDER_TTL_S", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub order_ttl_s: u64,

    /// Currencies each external method takes, `method=CUR CUR …` pairs separated by `;`
    /// (e.g. `alipay=CNY USD;wechat_pay=CNY`); a method left out takes the defaults
    /// (Alipay and WeChat Pay: the presentment currencies Stripe documents for them;
    /// cards: any). An order in another currency is `422 payment_method_unavailable`.
    #[arg(
        long,
        env = "SIMRENEW_PAYMENT_CURRENCIES",
        default_value = "",
        global = true
    )]
    pub payment_currencies: String,
}

/// Presentment currencies Stripe documents for Alipay
/// (https://docs.stripe.com/payments/alipay) and WeChat Pay
/// (https://docs.stripe.com/payments/wechat-pay); which of them a merchant may use also
/// depends on its country, which `SIMRENEW_PAYMENT_CURRENCIES` narrows.
const ALIPAY_CURRENCIES: &str = "CNY AUD CAD EUR GBP HKD JPY SGD MYR NZD USD";
const WECHAT_PAY_CURRENCIES: &str = "CNY AUD CAD EUR GBP HKD JPY SGD USD DKK NOK SEK CHF";

fn parse_method(text: &str, setting: &str) -> Result<PaymentMethod, String> {
    match text.trim() {
        "card" => Ok(PaymentMethod::Card),
        "alipay" => Ok(PaymentMethod::Alipay),
        "wechat_pay" => Ok(PaymentMethod::WechatPay),
        other => Err(format!(
            "{setting}: unknown method `{other}` (card, alipay, wechat_pay)"
        )),
    }
}

fn parse_currencies(list: &str, setting: &str) -> Result<Vec<Currency>, String> {
    list.split([' ', ','])
        .filter(|c| !c.is_empty())
        .map(|code| {
            code.parse::<Currency>()
                .map_err(|e| format!("{setting}: {e}"))
        })
        .collect()
}

/// The currencies each method takes: the documented defaults, overridden per method.
fn method_currencies(text: &str) -> Result<HashMap<PaymentMethod, Vec<Currency>>, String> {
    const SETTING: &str = "SIMRENEW_PAYMENT_CURRENCIES";
    let mut taken = HashMap::from([
        (
            PaymentMethod::Alipay,
            parse_currencies(ALIPAY_CURRENCIES, SETTING)?,
        ),
        (
            PaymentMethod::WechatPay,
            parse_currencies(WECHAT_PAY_CURRENCIES, SETTING)?,
        ),
    ]);
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (method, list) = pair
            .split_once('=')
            .ok_or_else(|| format!("{SETTING}: `{pair}` is not method=CURRENCIES"))?;
        let currencies = parse_currencies(list, SETTING)?;
        if currencies.is_empty() {
            return Err(format!("{SETTING}: `{pair}` names no currency"));
        }
        taken.insert(parse_method(method, SETTING)?, currencies);
    }
    Ok(taken)
}

/// How to reach Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com` in production; a local fake in tests.
    pub api_base: String,
    pub secret_key: String,
    pub webhook_secret: String,
    /// Where the payer returns after a redirect.
    pub return_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("return_url", &self.return_url)
            .finish_non_exhaustive()
    }
}

/// A provider a method can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Stripe,
    Sandbox,
}

/// Where subscriber verification codes go by SMS, and the providers' settings.
#[derive(Debug, Clone, Args)]
pub struct SmsArgs {
    /// `prefix=provider` pairs chosen by the longest matching number prefix, plus
    /// `default=provider`, e.g. `+86=aliyun,default=twilio`; providers: `aliyun`,
    /// `twilio`, `sandbox` (development: codes readable at `GET /v1/sandbox/sms`).
    /// Empty: no SMS (a send answers 503 sms_provider_unavailable).
    #[arg(long, env = "SIMRENEW_SMS_ROUTES", default_value = "", global = true)]
    pub sms_routes: String,

    /// How long an SMS provider call may take, in milliseconds.
    #[arg(long, env = "SIMRENEW_SMS_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub sms_timeout_ms: u64,

    /// Key of the verification codes' keyed hashes (at least 32 characters). Set the same
    /// on every instance; unset, each process makes its own, so a code checks only on the
    /// instance that sent it.
    #[arg(
        long,
        env = "SIMRENEW_VERIFICATION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub verification_key: Option<String>,

    /// Alibaba Cloud SMS endpoint.
    #[arg(
        long,
        env = "SIMRENEW_ALIYUN_SMS_BASE_URL",
        default_value = "https://dysmsapi.aliyuncs.com",
        global = true
    )]
    pub aliyun_sms_base_url: String,

    /// Alibaba Cloud AccessKey id (required when a route uses `aliyun`).
    #[arg(long, env = "SIMRENEW_ALIYUN_ACCESS_KEY_ID", global = true)]
    pub aliyun_access_key_id: Option<String>,

    /// Alibaba Cloud AccessKey secret.
    #[arg(
        long,
        env = "SIMRENEW_ALIYUN_ACCESS_KEY_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub aliyun_access_key_secret: Option<String>,

    /// The approved SMS signature (签名) shown as the sender.
    #[arg(long, env = "SIMRENEW_ALIYUN_SMS_SIGN_NAME", global = true)]
    pub aliyun_sms_sign_name: Option<String>,

    /// The approved template whose `${code}` receives the code, e.g. `SMS_123456789`.
    #[arg(long, env = "SIMRENEW_ALIYUN_SMS_TEMPLATE_CODE", global = true)]
    pub aliyun_sms_template_code: Option<String>,

    /// Twilio's API base URL.
    #[arg(
        long,
        env = "SIMRENEW_TWILIO_BASE_URL",
        default_value = "https://api.twilio.com",
        global = true
    )]
    pub twilio_base_url: String,

    /// Twilio Account SID (AC…; required when a route uses `twilio`).
    #[arg(long, env = "SIMRENEW_TWILIO_ACCOUNT_SID", global = true)]
    pub twilio_account_sid: Option<String>,

    /// Twilio Auth Token.
    #[arg(
        long,
        env = "SIMRENEW_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub twilio_auth_token: Option<String>,

    /// The sender: an E.164 number, or a Messaging Service SID (MG…).
    #[arg(long, env = "SIMRENEW_TWILIO_FROM", global = true)]
    pub twilio_from: Option<String>,
}

/// An SMS provider a number prefix can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProviderKind {
    Aliyun,
    Twilio,
    Sandbox,
}

impl SmsProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aliyun => "aliyun",
            Self::Twilio => "twilio",
            Self::Sandbox => "sandbox",
        }
    }
}

#[derive(Clone)]
pub struct AliyunSmsConfig {
    pub base_url: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub sign_name: String,
    pub template_code: String,
}

#[derive(Clone)]
pub struct TwilioConfig {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
}

/// SMS routing and providers, checked once.
#[derive(Clone)]
pub struct SmsSettings {
    /// Number prefixes and their providers, longest prefix first; `""` is the default.
    pub routes: Vec<(String, SmsProviderKind)>,
    pub aliyun: Option<AliyunSmsConfig>,
    pub twilio: Option<TwilioConfig>,
    pub timeout: Duration,
    /// `None`: a key made at start, for this process only.
    pub verification_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSettings")
            .field("routes", &self.routes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            aliyun: None,
            twilio: None,
            timeout: Duration::from_secs(10),
            verification_key: None,
        }
    }
}

impl SmsSettings {
    /// Every number to the sandbox (development, `--demo`).
    pub fn sandbox_everywhere(&mut self) {
        self.routes = vec![(String::new(), SmsProviderKind::Sandbox)];
    }
}

/// `+86=aliyun,default=twilio` → routes, longest prefix first.
pub fn parse_sms_routes(text: &str) -> Result<Vec<(String, SmsProviderKind)>, String> {
    let mut routes = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (prefix, provider) = pair
            .split_once('=')
            .ok_or_else(|| format!("SIMRENEW_SMS_ROUTES: `{pair}` is not prefix=provider"))?;
        let prefix = match prefix.trim() {
            "default" => String::new(),
            p if p.len() > 1
                && p.starts_with('+')
                && p[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                p.to_owned()
            }
            other => {
                return Err(format!(
                    "SIMRENEW_SMS_ROUTES: `{other}` is neither `default` nor a prefix like +86"
                ))
            }
        };
        let provider = match provider.trim() {
            "aliyun" => SmsProviderKind::Aliyun,
            "twilio" => SmsProviderKind::Twilio,
            "sandbox" => SmsProviderKind::Sandbox,
            other => {
                return Err(format!(
                    "SIMRENEW_SMS_ROUTES: unknown provider `{other}` (aliyun, twilio, sandbox)"
                ))
            }
        };
        if routes.iter().any(|(p, _)| *p == prefix) {
            return Err(format!(
                "SIMRENEW_SMS_ROUTES: `{pair}` routes a prefix twice"
            ));
        }
        routes.push((prefix, provider));
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.0.len()));
    Ok(routes)
}

impl SmsArgs {
    pub fn settings(&self) -> Result<SmsSettings, String> {
        let routes = parse_sms_routes(&self.sms_routes)?;
        let uses = |kind| routes.iter().any(|(_, k)| *k == kind);
        let aliyun = match (
            &self.aliyun_access_key_id,
            &self.aliyun_access_key_secret,
            &self.aliyun_sms_sign_name,
            &self.aliyun_sms_template_code,
        ) {
            (Some(id), Some(secret), Some(sign), Some(template)) => Some(AliyunSmsConfig {
                base_url: self.aliyun_sms_base_url.trim_end_matches('/').to_owned(),
                access_key_id: id.clone(),
                access_key_secret: secret.clone(),
                sign_name: sign.clone(),
                template_code: template.clone(),
            }),
            _ if uses(SmsProviderKind::Aliyun) => {
                return Err(
                    "an SMS route uses aliyun: set SIMRENEW_ALIYUN_ACCESS_KEY_ID, \
                     SIMRENEW_ALIYUN_ACCESS_KEY_SECRET, SIMRENEW_ALIYUN_SMS_SIGN_NAME and \
                     SIMRENEW_ALIYUN_SMS_TEMPLATE_CODE"
                        .into(),
                )
            }
            _ => None,
        };
        let twilio = match (
            &self.twilio_account_sid,
            &self.twilio_auth_token,
            &self.twilio_from,
        ) {
            (Some(sid), Some(token), Some(from)) => Some(TwilioConfig {
                base_url: self.twilio_base_url.trim_end_matches('/').to_owned(),
                account_sid: sid.clone(),
                auth_token: token.clone(),
                from: from.clone(),
            }),
            _ if uses(SmsProviderKind::Twilio) => {
                return Err(
                    "an SMS route uses twilio: set SIMRENEW_TWILIO_ACCOUNT_SID, \
                     SIMRENEW_TWILIO_AUTH_TOKEN and SIMRENEW_TWILIO_FROM"
                        .into(),
                )
            }
            _ => None,
        };
        let verification_key = match &self.verification_key {
            Some(key) if key.len() < 32 => {
                return Err("SIMRENEW_VERIFICATION_KEY must be at least 32 characters".into())
            }
            Some(key) => Some(key.as_bytes().to_vec()),
            None => None,
        };
        Ok(SmsSettings {
            routes,
            aliyun,
            twilio,
            timeout: Duration::from_millis(self.sms_timeout_ms),
            verification_key,
        })
    }
}

/// How events are pushed to partners' webhook endpoints.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Seconds between a failed delivery and its next attempts, comma-separated; after
    /// the last one the delivery has failed.
    #[arg(
        long,
        env = "SIMRENEW_WEBHOOK_RETRY_DELAYS_S",
        default_value = "5,300,1800,7200,18000,36000,36000",
        global = true
    )]
    pub webhook_retry_delays_s: String,

    /// Allow `http` and private, loopback and link-local webhook targets (development
    /// and tests only: in production they let partners reach the service's own network).
    #[arg(
        long,
        env = "SIMRENEW_WEBHOOK_ALLOW_PRIVATE_TARGETS",
        default_value_t = false,
        global = true
    )]
    pub webhook_allow_private_targets: bool,
}

impl WebhookArgs {
    pub fn settings(&self) -> Result<WebhookSettings, String> {
        let retry_delays = self
            .webhook_retry_delays_s
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=7 * 86_400).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        format!(
                            "SIMRENEW_WEBHOOK_RETRY_DELAYS_S: `{part}` is not 1 to 604800 seconds"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if retry_delays.len() > 20 {
            return Err("SIMRENEW_WEBHOOK_RETRY_DELAYS_S: at most 20 retries".into());
        }
        // Events (and their deliveries) are kept 30 days: retries must end before that.
        if retry_delays.iter().sum::<Duration>() > Duration::from_secs(20 * 86_400) {
            return Err(
                "SIMRENEW_WEBHOOK_RETRY_DELAYS_S: the retries must end within 20 days".into(),
            );
        }
        Ok(WebhookSettings {
            retry_delays,
            allow_private_targets: self.webhook_allow_private_targets,
        })
    }
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The waits before the 2nd, 3rd, … attempt.
    pub retry_delays: Vec<Duration>,
    pub allow_private_targets: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_delays: [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            allow_private_targets: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub routes: Vec<(PaymentMethod, ProviderKind)>,
    pub stripe: Option<StripeConfig>,
    pub order_ttl: Duration,
    /// Currencies a method takes; a method not listed takes any.
    pub currencies: HashMap<PaymentMethod, Vec<Currency>>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            stripe: None,
            order_ttl: Duration::from_secs(1800),
            currencies: method_currencies("").unwrap_or_default(),
        }
    }
}

impl PaymentSettings {
    /// Every external method through the sandbox (development, `--demo`).
    pub fn sandbox_everywhere(&mut self) {
        self.routes = [
            PaymentMethod::Card,
            PaymentMethod::Alipay,
            PaymentMethod::WechatPay,
        ]
        .into_iter()
        .map(|method| (method, ProviderKind::Sandbox))
        .collect();
    }
}

impl PaymentArgs {
    pub fn settings(&self) -> Result<PaymentSettings, String> {
        let mut routes = Vec::new();
        for pair in self
            .payment_methods
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (method, provider) = pair.split_once('=').ok_or_else(|| {
                format!("SIMRENEW_PAYMENT_METHODS: `{pair}` is not method=provider")
            })?;
            let method = parse_method(method, "SIMRENEW_PAYMENT_METHODS")?;
            let provider = match provider.trim() {
                "stripe" => ProviderKind::Stripe,
                "sandbox" => ProviderKind::Sandbox,
                other => {
                    return Err(format!(
                        "SIMRENEW_PAYMENT_METHODS: unknown provider `{other}` (stripe, sandbox)"
                    ))
                }
            };
            routes.push((method, provider));
        }
        let stripe = if routes.iter().any(|(_, p)| *p == ProviderKind::Stripe) {
            let secret_key = self
                .stripe_secret_key
                .clone()
                .ok_or("STRIPE_SECRET_KEY is required when a method uses Stripe")?;
            let webhook_secret = self
                .stripe_webhook_secret
                .clone()
                .ok_or("STRIPE_WEBHOOK_SECRET is required when a method uses Stripe")?;
            Some(StripeConfig {
                api_base: self.stripe_api_base.clone(),
                secret_key,
                webhook_secret,
                return_url: self.payment_return_url.clone(),
                timeout: Duration::from_millis(self.payment_timeout_ms),
            })
        } else {
            None
        };
        Ok(PaymentSettings {
            routes,
            stripe,
            order_ttl: Duration::from_secs(self.order_ttl_s),
            currencies: method_currencies(&self.payment_currencies)?,
        })
    }
}

/// Options of `simrenew serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SIMRENEW_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Do not apply pending migrations at start (run `simrenew migrate` separately).
    #[arg(long)]
    pub no_migrate: bool,

    /// On an empty database, seed a demo catalog, partner, cards and wallet, and print
    /// the demo credentials.
    #[arg(long)]
    pub demo: bool,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "SIMRENEW_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    /// Seconds given to in-flight requests to finish after SIGTERM/SIGINT.
    #[arg(long, env = "SIMRENEW_SHUTDOWN_TIMEOUT_S", default_value_t = 10)]
    pub shutdown_timeout_s: u64,

    /// Milliseconds a client has to send a request's head (line and headers).
    #[arg(long, env = "SIMRENEW_HEADER_READ_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub header_read_timeout_ms: u64,

    /// Milliseconds a client has to send a request's body once the head arrived
    /// (`408 request_timeout` after it, and the connection is closed).
    #[arg(long, env = "SIMRENEW_BODY_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub body_read_timeout_ms: u64,

    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "SIMRENEW_KEEP_ALIVE_S", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub keep_alive_s: u64,
}

/// Everything the running service needs, independent of how it was gathered.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
    /// Cards kept in memory (see `cards::cache`).
    pub card_cache_size: u64,
    pub auth: AuthSettings,
    /// The SM-DP+ address put in eSIM activation codes.
    pub smdp_address: String,
    /// Time between housekeeping sweeps.
    pub sweep_interval: Duration,
    /// The seller named on receipts.
    pub seller_name: String,
    pub payments: PaymentSettings,
    pub webhooks: WebhookSettings,
    pub sms: SmsSettings,
}

impl Settings {
    pub fn from_args(
        database: &DatabaseArgs,
        auth: &AuthArgs,
        activation: &ActivationArgs,
        payments: &PaymentArgs,
        webhooks: &WebhookArgs,
        sms: &SmsArgs,
    ) -> Result<Self, String> {
        Ok(Self {
            database_url: database.database_url.clone(),
            pool: database.pool_options(),
            card_cache_size: database.card_cache_size,
            auth: auth.settings()?,
            smdp_address: activation.smdp_address.clone(),
            sweep_interval: Duration::from_secs(activation.sweep_interval_s),
            seller_name: activation.seller_name.clone(),
            payments: payments.settings()?,
            webhooks: webhooks.settings()?,
            sms: sms.settings()?,
        })
    }

    /// Defaults for the given database: what tests and benchmarks start from.
    pub fn for_database(database_url: DatabaseUrl) -> Self {
        Self {
            database_url,
            pool: PoolOptions {
                max_connections: 10,
                acquire_timeout: Duration::from_secs(3),
            },
            card_cache_size: DEFAULT_CARD_CACHE_SIZE,
            auth: AuthSettings::default(),
            smdp_address: "smdp.simrenew.test".into(),
            sweep_interval: Duration::from_secs(60),
            seller_name: "simrenew".into(),
            payments: PaymentSettings::default(),
            webhooks: WebhookSettings::default(),
            sms: SmsSettings::default(),
        }
    }
}

//! Pushing events to webhook endpoints, per the Standard Webhooks specification:
//! `webhook-id` (the event id, the same on every retry), `webhook-timestamp` and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256>`, one per live secret), signed by the
//! `standardwebhooks` crate. At least once: a 2xx within `TIMEOUT` is success; anything
//! else is tried again after the configured delays, then the delivery has failed.
//!
//! Deliveries are made with their event (`fan_out`, same transaction). Every instance
//! sends: a delivery is claimed by a conditional update with a lease, so two instances
//! never send the same attempt, and a crashed sender's claim lapses after `LEASE`.
//!
//! SSRF guard: unless private targets are allowed (development), only `https` URLs, and
//! only public addresses: checked on the URL and again on every address DNS returns, at
//! connect time, so a name cannot be rebound to an internal address. Redirects are not
//! followed, and at most `MAX_RESPONSE_BYTES` of an answer is read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::endpoints::{self, EndpointRow, EndpointStatus};
use super::model::{Event, EventRow};
use crate::business_metrics::{on_commit, Fact};
use crate::clock::Clock;
use crate::config::WebhookSettings;
use crate::db::schema::{events, webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::db::{Db, DbConnection};
use crate::error::ApiError;

/// A delivery answered within this is judged by its status; later, it has failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is its sender's before another instance may take it.
const LEASE: TimeDelta = TimeDelta::seconds(30);
const MAX_RESPONSE_BYTES: usize = 4096;
/// Deliveries one sender takes at a time.
pub const BATCH: usize = 20;

crate::db::stored_enum! {
    /// Where a delivery stands.
    #[derive(utoipa::ToSchema)]
    pub enum DeliveryStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

/// Is `ip` an address on the public internet (not loopback, private, link-local,
/// carrier-grade NAT, multicast, reserved, documentation or a cloud metadata address)?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, the metadata address among them
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240) // reserved
}

/// Only global unicast (2000::/3) is public, less the prefixes that carry an IPv4
/// address inside (6to4, Teredo, NAT64) and documentation; everything outside it
/// (loopback, unique local such as fd00:ec2::254, link-local, site-local, multicast,
/// IPv4-compatible) is not.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    (first & 0xe000) == 0x2000
        && first != 0x2002 // 6to4
        && !(first == 0x2001 && second == 0x0000) // Teredo
        && !(first == 0x2001 && second == 0x0db8) // documentation
        && !(first == 0x0064 && second == 0xff9b) // NAT64 (outside 2000::/3 anyway)
}

/// Whether a partner may register `url`: `Ok` with it parsed, or why not.
pub fn target_allowed(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match (parsed.scheme(), allow_private) {
        ("https", _) | ("http", true) => {}
        _ => return Err("must be an https URL".into()),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let Some(host) = parsed.host() else {
        return Err("must name a host".into());
    };
    if allow_private {
        return Ok(parsed);
    }
    let refused = match host {
        url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal")
        }
    };
    if refused {
        return Err("must be on a public address".into());
    }
    Ok(parsed)
}

/// Resolves names to public addresses only: a name that resolves to an internal
/// address (at registration or later, by rebinding) cannot be reached through it.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client deliveries are sent with.
pub fn client(settings: &WebhookSettings) -> Result<reqwest::Client, String> {
    let mut builder = crate::http::outbound::client_builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve the target itself, past the guard.
        .no_proxy()
        .user_agent("simrenew-webhooks/1");
    if !settings.allow_private_targets {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the webhook client: {e}"))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub claim_token: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

/// Makes the deliveries of a new event, inside the transaction that appends it.
pub fn fan_out(
    conn: &mut DbConnection,
    enabled: &[endpoints::EndpointRow],
    event: &EventRow,
) -> Result<(), ApiError> {
    for endpoint in taking(enabled, event) {
        schedule(conn, &endpoint.id, &event.id, event.created_at)?;
    }
    Ok(())
}

/// The endpoints among `enabled` that take `event`. A setting that cannot be read must
/// not fail the payment or confirmation the event rides along with: that endpoint is
/// skipped, and the operator told.
fn taking<'e>(
    enabled: &'e [endpoints::EndpointRow],
    event: &EventRow,
) -> impl Iterator<Item = &'e endpoints::EndpointRow> {
    let event_type = event.event_type;
    enabled
        .iter()
        .filter(move |endpoint| match endpoint.takes(event_type) {
            Ok(takes) => takes,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "unreadable webhook endpoint skipped");
                false
            }
        })
}

/// [`fan_out`]'s deliveries as the CTE `delivered` of a larger PostgreSQL statement that
/// writes the event itself in its CTE `told` (see `store::NumberedEventCtes`): made only
/// if the event was. One statement text whatever the number of endpoints (arrays).
pub struct DeliveriesCte<'a> {
    event: &'a EventRow,
    ids: Vec<String>,
    endpoint_ids: Vec<String>,
    status: DeliveryStatus,
}

impl<'a> DeliveriesCte<'a> {
    pub fn new(enabled: &[endpoints::EndpointRow], event: &'a EventRow) -> Self {
        let endpoint_ids: Vec<String> = taking(enabled, event).map(|e| e.id.clone()).collect();
        Self {
            event,
            ids: endpoint_ids
                .iter()
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
            endpoint_ids,
            status: DeliveryStatus::Pending,
        }
    }

    pub fn walk<'b>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Text, Timestamp};
        out.push_sql(
            "delivered AS (INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, \
             attempts, next_attempt_at, lease_until, claim_token, created_at, updated_at) \
             SELECT d.id, d.endpoint_id, ",
        );
        out.push_bind_param::<Text, _>(&self.event.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.status)?;
        out.push_sql(", 0, ");
        out.push_bind_param::<Timestamp, _>(&self.event.created_at)?;
        out.push_sql(", NULL, NULL, ");
        out.push_bind_param::<Timestamp, _>(&self.event.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.event.created_at)?;
        out.push_sql(" FROM UNNEST(");
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.endpoint_ids)?;
        out.push_sql("::text[]) AS d(id, endpoint_id) WHERE EXISTS (SELECT 1 FROM told))");
        Ok(())
    }
}

/// A delivery of `event_id` to `endpoint_id`, due at `now`.
pub fn schedule(
    conn: &mut DbConnection,
    endpoint_id: &str,
    event_id: &str,
    now: NaiveDateTime,
) -> Result<DeliveryRow, ApiError> {
    let row = DeliveryRow {
        id: uuid::Uuid::now_v7().to_string(),
        endpoint_id: endpoint_id.to_owned(),
        event_id: event_id.to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        lease_until: None,
        claim_token: None,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(webhook_deliveries::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

/// Takes `id` for this sender if it is still due and nobody holds it.
fn claim(conn: &mut DbConnection, id: &str, token: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let free = webhook_deliveries::lease_until
        .is_null()
        .or(webhook_deliveries::lease_until.lt(now));
    let taken = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(id))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
            .filter(webhook_deliveries::next_attempt_at.le(now))
            .filter(free),
    )
    .set((
        webhook_deliveries::lease_until.eq(now + LEASE),
        webhook_deliveries::claim_token.eq(token),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Sends every due delivery this sender can claim, at most `BATCH`; how many it sent.
pub async fn deliver_due(
    db: &Db,
    http: &reqwest::Client,
    settings: &WebhookSettings,
    clock: &Clock,
) -> Result<usize, ApiError> {
    let now = clock.now_db();
    let due: Vec<String> = db
        .run(move |conn| {
            webhook_deliveries::table
                .inner_join(webhook_endpoints::table)
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
                .filter(webhook_deliveries::next_attempt_at.le(now))
                .filter(
                    webhook_deliveries::lease_until
                        .is_null()
                        .or(webhook_deliveries::lease_until.lt(now)),
                )
                .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled))
                .order(webhook_deliveries::next_attempt_at.asc())
                .limit(BATCH as i64)
                .select(webhook_deliveries::id)
                .load(conn)
                .map_err(ApiError::from)
        })
        .await?;
    let sends = due
        .into_iter()
        .map(|id| deliver_one(db, http, settings, clock, id));
    let mut sent = 0;
    for outcome in futures_util::future::join_all(sends).await {
        match outcome {
            Ok(true) => sent += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a webhook delivery could not be made; its claim lapses")
            }
        }
    }
    Ok(sent)
}

/// Deliveries due at `now` and not made, and when the oldest of them fell due, to
/// enabled endpoints only (a disabled endpoint's deliveries wait for the partner).
pub fn backlog(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(webhook_deliveries::next_attempt_at),
        ))
        .first(conn)
}

/// Claims, sends and records one delivery; `Ok(false)` when another sender had it.
async fn deliver_one(
    db: &Db,
    http: &reqwest::Client,
    settings: &WebhookSettings,
    clock: &Clock,
    id: String,
) -> Result<bool, ApiError> {
    let token = uuid::Uuid::new_v4().to_string();
    let now = clock.now_db();
    let claimed = {
        let (id, token) = (id.clone(), token.clone());
        db.run(move |conn| {
            if !claim(conn, &id, &token, now)? {
                return Ok::<_, ApiError>(None);
            }
            let delivery: DeliveryRow = webhook_deliveries::table
                .find(&id)
                .select(DeliveryRow::as_select())
                .first(conn)?;
            let endpoint: EndpointRow = webhook_endpoints::table
                .find(&delivery.endpoint_id)
                .select(EndpointRow::as_select())
                .first(conn)?;
            let event: EventRow = events::table
                .find(&delivery.event_id)
                .select(EventRow::as_select())
                .first(conn)?;
            Ok(Some((delivery, endpoint, event)))
        })
        .await?
    };
    let Some((delivery, endpoint, event)) = claimed else {
        return Ok(false);
    };
    let outcome = if let Err(why) = target_allowed(&endpoint.url, settings.allow_private_targets) {
        // Registered while private targets were allowed, or the rules have changed.
        Outcome {
            status: None,
            latency: Duration::ZERO,
            error: Some(format!("the endpoint's URL is no longer allowed: {why}")),
        }
    } else {
        match send(http, &endpoint, &event, clock).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(delivery = %delivery.id, error = %e, "a delivery could not be prepared");
                Outcome {
                    status: None,
                    latency: Duration::ZERO,
                    error: Some("the delivery could not be prepared".into()),
                }
            }
        }
    };
    let attempts = delivery.attempts.saturating_add(1);
    let finished_at = clock.now_db();
    let event_created_at = event.created_at;
    let (status, next) = if outcome.succeeded() {
        (DeliveryStatus::Succeeded, None)
    } else {
        match usize::try_from(delivery.attempts)
            .ok()
            .and_then(|done| settings.retry_delays.get(done))
        {
            Some(delay) => (
                DeliveryStatus::Pending,
                Some(finished_at + TimeDelta::from_std(*delay).unwrap_or(TimeDelta::MAX)),
            ),
            None => (DeliveryStatus::Failed, None),
        }
    };
    db.transaction(move |conn| {
        // Fenced by the claim: a sender whose lease lapsed (or whose delivery was
        // retried by hand, or deleted with its endpoint) records nothing.
        let still_ours = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(&delivery.id))
                .filter(webhook_deliveries::claim_token.eq(&token)),
        )
        .set((
            webhook_deliveries::status.eq(status),
            webhook_deliveries::attempts.eq(attempts),
            webhook_deliveries::next_attempt_at.eq(next),
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::claim_token.eq(None::<String>),
            webhook_deliveries::updated_at.eq(finished_at),
        ))
        .execute(conn)?;
        if still_ours == 1 {
            diesel::insert_into(webhook_attempts::table)
                .values(&AttemptRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    delivery_id: delivery.id.clone(),
                    attempted_at: now,
                    status_code: outcome.status.map(i32::from),
                    latency_ms: i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX),
                    error: outcome.error.clone(),
                })
                .execute(conn)?;
            record_health(conn, &endpoint.id, outcome.succeeded(), finished_at)?;
            on_commit(Fact::DeliveryAttempt {
                outcome: match status {
                    DeliveryStatus::Succeeded => "delivered",
                    DeliveryStatus::Pending => "failed_will_retry",
                    DeliveryStatus::Failed => "failed_gave_up",
                },
            });
            if status == DeliveryStatus::Succeeded {
                let lag = (finished_at - event_created_at)
                    .to_std()
                    .unwrap_or_default();
                on_commit(Fact::Delivered { lag });
            }
        }
        Ok::<_, ApiError>(())
    })
    .await?;
    Ok(true)
}

/// An endpoint whose every attempt failed for this long is disabled.
pub const GIVE_UP_AFTER: TimeDelta = TimeDelta::days(5);

/// Notes an attempt's outcome on its endpoint: a success clears its failing streak; a
/// failure starts one, or, 5 days into one, disables the endpoint and tells its
/// partner (`webhook.endpoint_disabled`), in the same transaction.
fn record_health(
    conn: &mut DbConnection,
    endpoint_id: &str,
    succeeded: bool,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let Some(mut endpoint) = webhook_endpoints::table
        .find(endpoint_id)
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(());
    };
    let failing_since = match (succeeded, endpoint.failing_since) {
        (true, None) => return Ok(()),
        (true, Some(_)) => None,
        (false, None) => Some(now),
        (false, Some(since)) if now - since < GIVE_UP_AFTER => return Ok(()),
        (false, Some(since)) => {
            if endpoint.status == EndpointStatus::Enabled {
                endpoint.status = EndpointStatus::Disabled;
                endpoint.updated_at = now;
                diesel::update(webhook_endpoints::table.find(endpoint_id))
                    .set((
                        webhook_endpoints::status.eq(EndpointStatus::Disabled),
                        webhook_endpoints::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                super::append(
                    conn,
                    &endpoint.partner_id,
                    super::EventType::WebhookEndpointDisabled,
                    &endpoints::Endpoint::try_from(&endpoint)?,
                    now,
                )?;
            }
            Some(since)
        }
    };
    diesel::update(webhook_endpoints::table.find(endpoint_id))
        .set(webhook_endpoints::failing_since.eq(failing_since))
        .execute(conn)?;
    Ok(())
}

/// What one attempt came to.
#[derive(Debug, Clone)]
struct Outcome {
    status: Option<u16>,
    latency: Duration,
    error: Option<String>,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The headers of one attempt: the event id, now, and a signature per live secret.
pub fn signed_headers(
    endpoint: &EndpointRow,
    event_id: &str,
    body: &[u8],
    timestamp: i64,
    now: NaiveDateTime,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let signatures = endpoint
        .signing_secrets(now)
        .into_iter()
        .map(|secret| {
            standardwebhooks::Webhook::new(secret)
                .and_then(|hook| hook.sign(event_id, timestamp, body))
                .map_err(|e| ApiError::internal(format!("cannot sign a delivery: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        (standardwebhooks::HEADER_WEBHOOK_ID, event_id.to_owned()),
        (
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        ),
        (
            standardwebhooks::HEADER_WEBHOOK_SIGNATURE,
            signatures.join(" "),
        ),
    ])
}

async fn send(
    http: &reqwest::Client,
    endpoint: &EndpointRow,
    event: &EventRow,
    clock: &Clock,
) -> Result<Outcome, ApiError> {
    let body = serde_json::to_vec(&Event::try_from(event)?).map_err(ApiError::internal)?;
    let now = clock.now();
    let headers = signed_headers(endpoint, &event.id, &body, now.timestamp(), clock.now_db())?;
    let mut request = http
        .post(&endpoint.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let started = Instant::now();
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read a little of the answer (a receiver's error text), never all of it.
            let mut response = response;
            let mut read = 0;
            while let Ok(Some(chunk)) = response.chunk().await {
                read += chunk.len();
                if read >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Outcome {
                status: Some(status),
                latency: started.elapsed(),
                error: None,
            }
        }
        Err(e) => Outcome {
            status: None,
            latency: started.elapsed(),
            error: Some(describe(&e)),
        },
    };
    Ok(outcome)
}

/// A send error as the deliveries log shows it (never the URL's query).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect (refused, unreachable, or not a public address)".into()
    } else {
        "the request failed before an answer".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "fec0::1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn targets_must_be_https_and_public_by_default() {
        assert!(target_allowed("https://partner.example/hook", false).is_ok());
        for refused in [
            "http://partner.example/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/hook",
            "https://localhost/hook",
            "https://user:pass@partner.example/hook",
            "ftp://partner.example/",
            "not a url",
        ] {
            assert!(target_allowed(refused, false).is_err(), "{refused}");
        }
        assert!(target_allowed("http://127.0.0.1:9000/hook", true).is_ok());
    }

    /// The guard at connect time: a name whose addresses are all internal resolves to
    /// nothing, so the request never leaves (a name rebound after registration too).
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_never_reached() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let guarded = client(&WebhookSettings {
            retry_delays: vec![],
            allow_private_targets: false,
        })
        .unwrap();
        let sent = guarded
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await;
        assert!(sent.is_err(), "refused before connecting");
    }
}

/// A delivery as the deliveries log shows it, with every attempt.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub status: DeliveryStatus,
    /// When the next attempt is due; absent once it succeeded or failed for good.
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub attempts: Vec<Attempt>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempted_at: chrono::DateTime<chrono::Utc>,
    /// The receiver's status; absent when there was no answer.
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    /// Why it failed without an answer (timeout, refused, not a public address).
    pub error: Option<String>,
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub data: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

fn shown(row: &DeliveryRow, attempts: &[AttemptRow]) -> Result<Delivery, ApiError> {
    use crate::domain::time;
    Ok(Delivery {
        id: crate::db::stored_uuid(&row.id)?,
        event_id: crate::db::stored_uuid(&row.event_id)?,
        status: row.status,
        next_attempt_at: match row.status {
            DeliveryStatus::Pending => row.next_attempt_at.map(time::from_db),
            _ => None,
        },
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == row.id)
            .map(|a| Attempt {
                attempted_at: time::from_db(a.attempted_at),
                status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                latency_ms: u32::try_from(a.latency_ms).unwrap_or(0),
                error: a.error.clone(),
            })
            .collect(),
        created_at: time::from_db(row.created_at),
    })
}

/// An endpoint's deliveries, newest first, with their attempts.
pub async fn list(
    db: &Db,
    partner_id: String,
    endpoint_id: String,
    page: crate::pagination::PageRequest,
) -> Result<DeliveryList, ApiError> {
    let (rows, attempts) = {
        let page = page.clone();
        db.run(move |conn| {
            let endpoint = endpoints::find(conn, &partner_id, &endpoint_id)?;
            let mut query = webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(&endpoint.id))
                .order(webhook_deliveries::id.desc())
                .limit(page.fetch_limit())
                .select(DeliveryRow::as_select())
                .into_boxed();
            if let Some(before) = &page.after {
                query = query.filter(webhook_deliveries::id.lt(before.clone()));
            }
            let rows: Vec<DeliveryRow> = query.load(conn)?;
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            let attempts: Vec<AttemptRow> = webhook_attempts::table
                .filter(webhook_attempts::delivery_id.eq_any(ids))
                .order(webhook_attempts::id.asc())
                .select(AttemptRow::as_select())
                .load(conn)?;
            Ok::<_, ApiError>((rows, attempts))
        })
        .await?
    };
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    Ok(DeliveryList {
        data: rows
            .iter()
            .map(|row| shown(row, &attempts))
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// Makes a delivery due now again (after the receiver was fixed), whatever its state.
pub async fn retry(
    db: &Db,
    partner_id: String,
    endpoint_id: String,
    delivery_id: String,
    now: NaiveDateTime,
) -> Result<Delivery, ApiError> {
    db.transaction(move |conn| {
        let endpoint = endpoints::find(conn, &partner_id, &endpoint_id)?;
        let updated = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(&delivery_id))
                .filter(webhook_deliveries::endpoint_id.eq(&endpoint.id)),
        )
        .set((
            webhook_deliveries::status.eq(DeliveryStatus::Pending),
            webhook_deliveries::next_attempt_at.eq(Some(now)),
            // A sender holding it now records nothing over this retry.
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::claim_token.eq(None::<String>),
            webhook_deliveries::updated_at.eq(now),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(ApiError::not_found(format!("no delivery {delivery_id}")));
        }
        let row: DeliveryRow = webhook_deliveries::table
            .find(&delivery_id)
            .select(DeliveryRow::as_select())
            .first(conn)?;
        let attempts: Vec<AttemptRow> = webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq(&delivery_id))
            .order(webhook_attempts::id.asc())
            .select(AttemptRow::as_select())
            .load(conn)?;
        shown(&row, &attempts)
    })
    .await
}

/// Appends a `webhook.test` event and a delivery of it to this endpoint only.
pub async fn test(
    db: &Db,
    partner_id: String,
    endpoint_id: String,
    now: NaiveDateTime,
) -> Result<Delivery, ApiError> {
    db.transaction(move |conn| {
        let endpoint = endpoints::find(conn, &partner_id, &endpoint_id)?;
        let data = serde_json::to_string(&endpoints::Endpoint::try_from(&endpoint)?)
            .map_err(ApiError::internal)?;
        let event = EventRow {
            id: uuid::Uuid::now_v7().to_string(),
            partner_id: partner_id.clone(),
            seq: super::store::next_seq(conn, &partner_id)?,
            event_type: super::EventType::WebhookTest,
            data,
            created_at: now,
        };
        super::store::insert(conn, &event)?;
        let row = schedule(conn, &endpoint.id, &event.id, now)?;
        shown(&row, &[])
    })
    .await
}

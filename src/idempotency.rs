//! `Idempotency-Key` for any POST (IETF draft-ietf-httpapi-idempotency-key-header, as
//! Stripe does it). Keys are scoped per partner and live 24 hours.
//!
//! The database is the lock, so it holds across instances:
//! 1. claim the key: for work done in one transaction ([`execute`]), in that very
//!    transaction (a concurrent duplicate waits for it, then replays its answer); for
//!    work in several steps ([`start`]), in a short transaction of its own (a concurrent
//!    duplicate then sees `in_progress` → `409`); a different request under the key →
//!    `422`;
//! 2. run the work and record its response in one transaction, so the work can never
//!    commit without its response being stored. A claim of its own transaction is a
//!    short lease (`CLAIM_LEASE`) that the request renews while its work runs: a crashed
//!    request's claim lapses within seconds and a retry takes it over; a failed one is
//!    released (a claim inside the work's transaction simply rolls back with it);
//! 3. replay the stored status, `Location` and body bytes for every later retry, business
//!    errors (`402`, `409`, `422`) included. Server errors release the claim instead, so
//!    the client can retry.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chrono::TimeDelta;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::business_metrics::Fact;
use crate::db::schema::idempotency_keys;
use crate::db::{Db, DbConnection};
use crate::domain::time;
use crate::error::{ApiError, ErrorCode, TxError};

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_LEN: usize = 255;
const KEY_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// How long a claim holds without renewal: a claim not renewed for this long belongs to
/// a request that died (its work never committed), and a retry may take it over.
const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(3);
/// How often a request renews the lease of the key it holds while its work runs.
const LEASE_RENEWAL: Duration = Duration::from_secs(1);

crate::db::stored_enum! {
    /// Where a key's request stands.
    pub enum KeyState {
        InProgress = "in_progress",
        Completed = "completed",
    }
}

/// One request under one key.
#[derive(Debug, Clone)]
pub struct Scope {
    partner_id: String,
    key: String,
    fingerprint: String,
}

impl Scope {
    /// The key from the request (validated), and a fingerprint of method, path and the
    /// canonical form of the parsed body (so formatting differences do not matter).
    pub fn from_request<B: Serialize>(
        req: &HttpRequest,
        partner_id: &str,
        body: &B,
        required: bool,
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = req.headers().get(HEADER) else {
            return if required {
                Err(ApiError::new(
                    ErrorCode::IdempotencyKeyMissing,
                    "send an `Idempotency-Key` header (a UUID works) so that a retry cannot charge twice",
                ))
            } else {
                Ok(None)
            };
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_KEY_LEN
                    && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{HEADER}` must be 1 to {MAX_KEY_LEN} visible ASCII characters"
                ))
            })?;
        let canonical = serde_json::to_vec(body).map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        hasher.update(req.method().as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(req.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(&canonical);
        let fingerprint = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Self {
            partner_id: partner_id.to_owned(),
            key: key.to_owned(),
            fingerprint,
        }))
    }
}

/// A response as stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: Serialize>(
        status: StatusCode,
        location: Option<String>,
        value: &T,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            location,
            body: serde_json::to_vec(value).map_err(ApiError::internal)?,
        })
    }

    fn into_response(self, replayed: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.content_type(if self.status.as_u16() >= 400 {
            "application/problem+json"
        } else {
            "application/json"
        });
        if let Some(location) = self.location {
            response.insert_header((header::LOCATION, location));
        }
        if replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
        }
        response.body(self.body)
    }
}

enum Claim {
    /// This request holds the key; `resource_id` is what an earlier, interrupted attempt
    /// had created (multi-step requests resume from it).
    Claimed {
        resource_id: Option<String>,
        fence: String,
    },
    Replay(Reply),
    Mismatch,
    /// Another request holds the key, its lease running until then (when known).
    InProgress(Option<chrono::NaiveDateTime>),
}

type Row = (
    String,
    KeyState,
    chrono::NaiveDateTime,
    Option<i32>,
    Option<String>,
    Option<Vec<u8>>,
    chrono::NaiveDateTime,
    Option<String>,
    Option<String>,
);

fn find(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Option<Row>> {
    idempotency_keys::table
        .find((&scope.partner_id, &scope.key))
        .select((
            idempotency_keys::fingerprint,
            idempotency_keys::state,
            idempotency_keys::locked_until,
            idempotency_keys::response_status,
            idempotency_keys::response_location,
            idempotency_keys::response_body,
            idempotency_keys::expires_at,
            idempotency_keys::resource_id,
            idempotency_keys::claim_token,
        ))
        .first(conn)
        .optional()
}

fn try_claim(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Claim> {
    let now = time::to_db(time::now());
    let lease_until = now + CLAIM_LEASE;
    let fence = uuid::Uuid::new_v4().to_string();
    let fresh_claim = |conn: &mut DbConnection| {
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::partner_id.eq(&scope.partner_id),
                idempotency_keys::idempotency_key.eq(&scope.key),
                idempotency_keys::fingerprint.eq(&scope.fingerprint),
                idempotency_keys::state.eq(KeyState::InProgress),
                idempotency_keys::locked_until.eq(lease_until),
                idempotency_keys::claim_token.eq(&fence),
                idempotency_keys::created_at.eq(now),
                idempotency_keys::expires_at.eq(now + KEY_LIFETIME),
            ))
            .execute(conn)
            .map(|_| Claim::Claimed {
                resource_id: None,
                fence: fence.clone(),
            })
    };
    let target = idempotency_keys::table.find((&scope.partner_id, &scope.key));
    match find(conn, scope)? {
        None => fresh_claim(conn),
        Some((.., expires_at, _, _)) if expires_at <= now => {
            diesel::delete(target).execute(conn)?;
            fresh_claim(conn)
        }
        Some((fingerprint, ..)) if fingerprint != scope.fingerprint => Ok(Claim::Mismatch),
        Some((_, KeyState::Completed, _, Some(status), location, Some(body), ..)) => {
            Ok(Claim::Replay(Reply {
                status: u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| {
                        diesel::result::Error::DeserializationError(
                            format!("unreadable stored response status {status}").into(),
                        )
                    })?,
                location,
                body,
            }))
        }
        Some((_, _, locked_until, ..)) if locked_until > now => {
            Ok(Claim::InProgress(Some(locked_until)))
        }
        // The request holding the claim died, or gave up, before finishing: take over, as a
        // compare-and-swap on the lock it held, so two retries cannot both take it.
        Some((_, KeyState::InProgress, held_until, .., resource_id, _)) => {
            let taken = diesel::update(
                target
                    .filter(idempotency_keys::state.eq(KeyState::InProgress))
                    .filter(idempotency_keys::locked_until.eq(held_until)),
            )
            .set((
                idempotency_keys::locked_until.eq(lease_until),
                idempotency_keys::claim_token.eq(&fence),
            ))
            .execute(conn)?;
            Ok(if taken == 1 {
                Claim::Claimed { resource_id, fence }
            } else {
                Claim::InProgress(None)
            })
        }
        Some(_) => Ok(Claim::InProgress(None)),
    }
}

async fn claim(db: &Db, scope: &Scope) -> Result<Claim, ApiError> {
    for _ in 0..3 {
        let attempt = scope.clone();
        match db
            .transaction(move |conn| Ok::<_, TxError>(try_claim(conn, &attempt)?))
            .await
        {
            Ok(claim) => return Ok(claim),
            // Two first claims raced and this one lost the insert: look again.
            Err(TxError::Conflict) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(TxError::Failed(e)) => return Err(e),
        }
    }
    Ok(Claim::InProgress(None))
}

/// The key's row, if this request still holds it: the fence is the claim token it set,
/// and a request that lost its claim (its lease lapsed and another took over) finds
/// nothing, so its work rolls back instead of committing a second time.
macro_rules! held_row {
    ($scope:expr, $fence:expr) => {
        idempotency_keys::table
            .find((&$scope.partner_id, &$scope.key))
            .filter(idempotency_keys::state.eq(KeyState::InProgress))
            .filter(idempotency_keys::claim_token.eq(&$fence))
    };
}

/// Renews the lease of a held claim every `LEASE_RENEWAL` until dropped (the last clone
/// of the [`Held`] it belongs to).
#[derive(Debug)]
struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    fn start(db: Db, scope: Scope, fence: String) -> Self {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_RENEWAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (scope, fence) = (scope.clone(), fence.clone());
                let renewed = db
                    .transaction(move |conn| {
                        let until = time::to_db(time::now()) + CLAIM_LEASE;
                        diesel::update(held_row!(scope, fence))
                            .set(idempotency_keys::locked_until.eq(until))
                            .execute(conn)
                            .map_err(ApiError::from)
                    })
                    .await;
                match renewed {
                    Ok(1) => {}
                    // Completed, released, or taken over: nothing left to keep.
                    Ok(_) => return,
                    // The database was busy or away: try again at the next tick.
                    Err(e) => tracing::debug!(error = %e, "an idempotency lease was not renewed"),
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn record(conn: &mut DbConnection, scope: &Scope, fence: &str, reply: &Reply) -> QueryResult<()> {
    let updated = diesel::update(held_row!(scope, fence))
        .set((
            idempotency_keys::state.eq(KeyState::Completed),
            idempotency_keys::response_status.eq(i32::from(reply.status.as_u16())),
            idempotency_keys::response_location.eq(&reply.location),
            idempotency_keys::response_body.eq(&reply.body),
        ))
        .execute(conn)?;
    if updated == 1 {
        Ok(())
    } else {
        Err(diesel::result::Error::NotFound)
    }
}

async fn release(db: &Db, scope: Scope, fence: String) {
    let released = db
        .transaction(move |conn| {
            diesel::delete(held_row!(scope, fence))
                .execute(conn)
                .map_err(ApiError::from)
        })
        .await;
    if let Err(e) = released {
        tracing::warn!(error = %e, "could not release an idempotency claim; it lapses after its timeout");
    }
}

/// A client error as the bytes the client saw, so a replay is identical.
async fn reply_of(err: &ApiError) -> Result<Reply, ApiError> {
    let response = err.error_response();
    let status = response.status();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|_| ApiError::internal("cannot render a problem body"))?;
    Ok(Reply {
        status,
        location: None,
        body: body.to_vec(),
    })
}

/// A key this request holds: finish it with [`Held::complete`] (or let it lapse).
#[derive(Debug, Clone)]
pub struct Held {
    scope: Scope,
    /// The claim token this request set; only its holder may write the key.
    fence: String,
    /// What an interrupted earlier attempt had created, to resume from.
    pub resource_id: Option<String>,
    /// Keeps the claim's lease alive while any clone of this is alive.
    _lease: std::sync::Arc<LeaseKeeper>,
}

/// Where a keyed request stands before its work.
pub enum Start {
    /// The key is this request's to use.
    Held(Held),
    /// The request ran before: answer with this.
    Replay(HttpResponse),
}

fn key_reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was used with a different request; use a new key for a new request",
    )
}

/// Another request holds the key; `until`: when its lease lapses if not renewed.
fn in_progress(until: Option<chrono::NaiveDateTime>) -> ApiError {
    let wait = until
        .map(|until| (until - time::to_db(time::now())).num_milliseconds())
        .map(|ms| (ms + 999) / 1000)
        .unwrap_or(1)
        .clamp(1, CLAIM_LEASE.num_seconds());
    ApiError::new(
        ErrorCode::IdempotencyRequestInProgress,
        "a request with this Idempotency-Key is still in progress; retry shortly",
    )
    .with_header(
        header::RETRY_AFTER,
        HeaderValue::from_str(&wait.to_string()).unwrap_or(HeaderValue::from_static("1")),
    )
}

/// Counts a key that was not this request's to use, by how it was answered.
fn count_not_ours(db: &Db, claim: &Claim) {
    let outcome = match claim {
        Claim::Replay(_) => "replayed",
        Claim::Mismatch => "reused_with_other_request",
        Claim::InProgress(_) => "in_progress",
        Claim::Claimed { .. } => return,
    };
    db.metrics().count(Fact::Idempotency { outcome });
}

/// Claims the key, or tells how an earlier request with it went.
pub async fn start(db: &Db, scope: Scope) -> Result<Start, ApiError> {
    let claim = claim(db, &scope).await?;
    count_not_ours(db, &claim);
    match claim {
        Claim::Replay(reply) => Ok(Start::Replay(reply.into_response(true))),
        Claim::Mismatch => Err(key_reused()),
        Claim::InProgress(until) => Err(in_progress(until)),
        Claim::Claimed { resource_id, fence } => Ok(Start::Held(Held {
            _lease: std::sync::Arc::new(LeaseKeeper::start(
                db.clone(),
                scope.clone(),
                fence.clone(),
            )),
            scope,
            fence,
            resource_id,
        })),
    }
}

impl Held {
    /// Records what this request has created so far, in the transaction that created it,
    /// so that a retry after a failure of the next step resumes instead of starting over.
    pub fn attach(&self, conn: &mut DbConnection, resource_id: &str) -> QueryResult<()> {
        let updated = diesel::update(held_row!(self.scope, self.fence))
            .set(idempotency_keys::resource_id.eq(resource_id))
            .execute(conn)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(diesel::result::Error::NotFound)
        }
    }

    /// Stores the answer, in the transaction of the request's last write; fails (so the
    /// work rolls back) if this request no longer holds the key.
    pub fn complete(&self, conn: &mut DbConnection, reply: &Reply) -> QueryResult<()> {
        record(conn, &self.scope, &self.fence, reply)
    }

    /// Remembers a refusal (the work rolled back) so a retry gets the same answer.
    pub async fn refuse(self, db: &Db, err: &ApiError) -> Result<HttpResponse, ApiError> {
        let reply = reply_of(err).await?;
        let stored = reply.clone();
        let (scope, fence) = (self.scope, self.fence);
        let recorded = db
            .transaction(move |conn| record(conn, &scope, &fence, &stored).map_err(ApiError::from))
            .await;
        if recorded.is_err() {
            tracing::warn!("a refusal was not stored: the idempotency claim had passed to a retry");
        }
        Ok(reply.into_response(false))
    }

    /// Gives the key up so that a retry runs: from scratch when nothing was written, or
    /// resuming from the attached resource (`keep_resource`).
    pub async fn release(self, db: &Db, keep_resource: bool) {
        if !(keep_resource && self.resource_id.is_some()) {
            return release(db, self.scope, self.fence).await;
        }
        let (scope, fence) = (self.scope, self.fence);
        let now = time::to_db(time::now());
        let reopened = db
            .transaction(move |conn| {
                diesel::update(held_row!(scope, fence))
                    .set(idempotency_keys::locked_until.eq(now))
                    .execute(conn)
                    .map_err(ApiError::from)
            })
            .await;
        if let Err(e) = reopened {
            tracing::warn!(error = %e, "could not reopen an idempotency claim; it lapses after its timeout");
        }
    }
}

/// The response for a reply (what [`Held::complete`] stored).
pub fn respond(reply: Reply) -> HttpResponse {
    reply.into_response(false)
}

/// Runs `work` in one transaction, at most once per key. Without a key, runs it plainly.
///
/// The key is claimed in the work's own transaction, by its first statement: an insert
/// that a concurrent request with the same key waits behind (PostgreSQL holds the
/// uncommitted key; SQLite has one writer), and then finds completed and replays. So the
/// key costs two statements (the claim, and the answer stored with the work), and a
/// crash anywhere rolls the claim back with the work: nothing to lapse or take over.
pub async fn execute<F>(db: &Db, scope: Option<Scope>, work: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<Reply, ApiError> + Send + 'static,
{
    execute_in_stages(db, scope, move |conn| Ok((work(conn)?, ())), |_, ()| Ok(())).await
}

/// [`execute`] for work whose answer is known before its end: `work` makes the answer,
/// the answer is stored, then `finish` runs — all in the one transaction, which a failure
/// of `finish` rolls back as a whole. Statements that lock rows other requests wait for
/// go in `finish`, so the key's write is not among the statements they wait through.
pub async fn execute_in_stages<T, F, G>(
    db: &Db,
    scope: Option<Scope>,
    work: F,
    finish: G,
) -> Result<HttpResponse, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<(Reply, T), ApiError> + Send + 'static,
    G: FnOnce(&mut DbConnection, T) -> Result<(), ApiError> + Send + 'static,
{
    let Some(scope) = scope else {
        return db
            .transaction(move |conn| {
                let (reply, rest) = work(conn)?;
                finish(conn, rest)?;
                Ok(reply)
            })
            .await
            .map(respond);
    };
    let attempt = scope.clone();
    let outcome = db
        .transaction(move |conn| match claim_in_transaction(conn, &attempt)? {
            Claim::Claimed { fence, .. } => {
                let (reply, rest) = work(conn)?;
                record(conn, &attempt, &fence, &reply)?;
                finish(conn, rest)?;
                Ok(Ok(reply))
            }
            not_ours => Ok::<_, ApiError>(Err(not_ours)),
        })
        .await;
    match outcome {
        Ok(Ok(reply)) => Ok(respond(reply)),
        Ok(Err(not_ours)) => {
            count_not_ours(db, &not_ours);
            answer_for(not_ours)
        }
        // The work rolled back, the claim with it: the refusal is stored on its own, so a
        // retry gets the same answer.
        Err(err) if err.code().status().is_client_error() => refuse_after(db, scope, err).await,
        Err(err) => Err(err),
    }
}

/// A new key claimed with its answer already stored, as the CTE `claim` of a larger
/// PostgreSQL statement that does the work too (the work of [`execute_in_stages`] in one
/// statement): a row when the key was new; none when another request has it — the insert
/// waits for a concurrent holder to finish first, as [`claim_in_transaction`]'s does. The
/// caller then rolls back and runs [`execute_in_stages`], which answers for the key.
pub struct AnsweredClaim<'a> {
    after: &'static str,
    scope: &'a Scope,
    reply: &'a Reply,
    status: i32,
    fence: String,
    now: chrono::NaiveDateTime,
    lease_until: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
}

impl<'a> AnsweredClaim<'a> {
    /// Inserted only if the CTE `after` of the enclosing statement has a row (which also
    /// runs it first). A statement type passes the same `after` every time.
    pub fn new(scope: &'a Scope, reply: &'a Reply, after: &'static str) -> Self {
        let now = time::to_db(time::now());
        Self {
            after,
            scope,
            reply,
            status: i32::from(reply.status.as_u16()),
            fence: uuid::Uuid::new_v4().to_string(),
            now,
            lease_until: now + CLAIM_LEASE,
            expires_at: now + KEY_LIFETIME,
        }
    }

    pub fn walk<'b>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Binary, Integer, Nullable, Text, Timestamp};
        out.push_sql(
            "claim AS (INSERT INTO idempotency_keys (partner_id, idempotency_key, fingerprint, \
             state, locked_until, claim_token, created_at, expires_at, response_status, \
             response_location, response_body) SELECT ",
        );
        out.push_bind_param::<Text, _>(&self.scope.partner_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.scope.key)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.scope.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(KeyState::Completed.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.lease_until)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.fence)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&self.status)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.reply.location)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Binary>, _>(&self.reply.body)?;
        out.push_sql(" WHERE EXISTS (SELECT 1 FROM ");
        out.push_sql(self.after);
        out.push_sql(") ON CONFLICT DO NOTHING RETURNING 1)");
        Ok(())
    }
}

/// Claims the key inside the caller's transaction: a new key is inserted (waiting for a
/// concurrent holder of the same key to finish); a key that exists is judged as
/// [`try_claim`] judges it.
fn claim_in_transaction(conn: &mut DbConnection, scope: &Scope) -> QueryResult<Claim> {
    let now = time::to_db(time::now());
    let fence = uuid::Uuid::new_v4().to_string();
    let claim = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::partner_id.eq(&scope.partner_id),
            idempotency_keys::idempotency_key.eq(&scope.key),
            idempotency_keys::fingerprint.eq(&scope.fingerprint),
            idempotency_keys::state.eq(KeyState::InProgress),
            idempotency_keys::locked_until.eq(now + CLAIM_LEASE),
            idempotency_keys::claim_token.eq(&fence),
            idempotency_keys::created_at.eq(now),
            idempotency_keys::expires_at.eq(now + KEY_LIFETIME),
        ))
        .on_conflict_do_nothing();
    // diesel's multi-backend connection has no ON CONFLICT; each backend has.
    let inserted = match conn {
        DbConnection::Postgres(pg) => claim.execute(pg)?,
        DbConnection::Sqlite(lite) => claim.execute(lite)?,
    };
    if inserted == 1 {
        return Ok(Claim::Claimed {
            resource_id: None,
            fence,
        });
    }
    try_claim(conn, scope)
}

/// The answer to a request whose key was not claimed.
fn answer_for(claim: Claim) -> Result<HttpResponse, ApiError> {
    match claim {
        Claim::Replay(reply) => Ok(reply.into_response(true)),
        Claim::Mismatch => Err(key_reused()),
        Claim::InProgress(until) => Err(in_progress(until)),
        Claim::Claimed { .. } => Err(ApiError::internal("a claimed key was not used")),
    }
}

/// Stores `err` as the key's answer, after the work that produced it rolled back. A
/// request with the same key that finished meanwhile decides the answer instead.
async fn refuse_after(db: &Db, scope: Scope, err: ApiError) -> Result<HttpResponse, ApiError> {
    let reply = reply_of(&err).await?;
    let stored = reply.clone();
    let outcome = db
        .transaction(move |conn| match claim_in_transaction(conn, &scope)? {
            Claim::Claimed { fence, .. } => {
                record(conn, &scope, &fence, &stored)?;
                Ok(None)
            }
            not_ours => Ok::<_, ApiError>(Some(not_ours)),
        })
        .await;
    match outcome {
        Ok(None) => Ok(reply.into_response(false)),
        Ok(Some(claim @ Claim::Replay(_))) => {
            count_not_ours(db, &claim);
            answer_for(claim)
        }
        Ok(Some(_)) => {
            tracing::warn!("a refusal was not stored: another request holds its key");
            Ok(reply.into_response(false))
        }
        Err(e) => {
            tracing::warn!(error = %e, "a refusal was not stored; a retry runs the request again");
            Ok(reply.into_response(false))
        }
    }
}

/// Deletes expired keys; returns how many.
pub async fn purge_expired(db: &Db, clock: &crate::clock::Clock) -> Result<usize, ApiError> {
    let now = clock.now_db();
    db.transaction(move |conn| {
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::expires_at.le(now)))
            .execute(conn)
            .map_err(ApiError::from)
    })
    .await
}

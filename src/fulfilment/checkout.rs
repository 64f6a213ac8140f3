//! Placing an order and taking its money: from the wallet at once (on PostgreSQL usually
//! by one statement, else in one transaction), or from a payment provider in three steps
//! that are each safe to interrupt.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{NaiveDateTime, TimeDelta};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::BigInt;
use diesel::{QueryResult, RunQueryDsl};

use crate::activation::{store as activation_store, ActivationRow};
use crate::clock::Clock;
use crate::db::fixed_sql::fixed_pg_statement;
use crate::db::{Backend, Db, DbConnection};
use crate::domain::{time, MinorUnits, Money};
use crate::error::{ApiError, ErrorCode};
use crate::events::{self, EventType};
use crate::idempotency::{self, Reply};
use crate::notifications;
use crate::orders::model::{Order, OrderRequest, OrderRow};
use crate::orders::state::OrderStatus;
use crate::orders::{self, store as order_store};
use crate::payments::{PaymentRequest, Payments, ProviderError};
use crate::wallet;

/// The `201` answer naming a new order.
pub fn created(order: &OrderRow) -> Result<Reply, ApiError> {
    Reply::json(
        StatusCode::CREATED,
        Some(format!("/v1/orders/{}", order.id)),
        &Order::try_from(order)?,
    )
}

/// A wallet order: after the checks, the order is written `paid` with a receipt number,
/// its activation is created, the wallet is debited (`402 insufficient_funds`
/// otherwise), `order.paid` is told, and a wallet taken below its alert amount too — in
/// the caller's transaction: all of it, or nothing.
pub fn place_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let unpaid = prepare_wallet_order_in(conn, partner_id, request, smdp_address, now)?;
    unpaid.take_payment_in(conn, now)
}

/// A wallet order checked and priced, its rows made: the first of
/// [`place_wallet_order_in`]'s two stages once written ([`prepare_wallet_order_in`]), or
/// all of a [`WalletOrderStatement`]. Nothing in it waits for another order.
pub struct WalletOrder {
    pub order: OrderRow,
    /// `None` for an order that waits for its start.
    activation: Option<ActivationRow>,
    price: Money,
    recipients: events::Recipients,
    alert: Option<crate::domain::MinorUnits>,
}

/// Checks and prices the order, makes its `paid` row with a receipt number and its
/// activation, and reads who is told of it: reads only.
fn plan_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<WalletOrder, ApiError> {
    let priced = orders::price_paid_at_once(conn, partner_id, request)?;
    let order = orders::paid_row(conn, partner_id, request, &priced, now)?;
    let activation = if order.waits_for_start(now) {
        None
    } else {
        Some(super::activation_for(
            conn,
            &order,
            &priced.card,
            priced.verify_subscriber,
            smdp_address,
            now,
        )?)
    };
    // The price's query said whether the partner has an enabled endpoint: without one,
    // the order skips reading them.
    let recipients = if priced.has_webhook_endpoints {
        events::recipients(conn, partner_id)?
    } else {
        events::Recipients::without_endpoints(partner_id)
    };
    Ok(WalletOrder {
        order,
        activation,
        price: Money::new(priced.amount, request.currency),
        recipients,
        alert: priced.wallet_alert,
    })
}

/// Checks and prices the order, writes it `paid` with its receipt number, creates its
/// activation, and reads who is told of it: every statement that locks nothing another
/// order of the partner needs.
pub fn prepare_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<WalletOrder, ApiError> {
    let planned = plan_wallet_order_in(conn, partner_id, request, smdp_address, now)?;
    order_store::insert(conn, &planned.order)?;
    if let Some(activation) = &planned.activation {
        activation_store::insert(conn, activation)?;
    }
    Ok(planned)
}

impl WalletOrder {
    /// The second stage: debits the wallet and tells `order.paid` (and a low balance).
    /// Every order of a partner locks the partner's wallet row and event counter until
    /// its transaction ends, so these come last in the transaction, after everything
    /// else (the idempotency answer included): the locks are held for the fewest
    /// statements.
    pub fn take_payment_in(
        self,
        conn: &mut DbConnection,
        now: NaiveDateTime,
    ) -> Result<OrderRow, ApiError> {
        let partner_id = &self.order.partner_id;
        let debit = wallet::debit(conn, partner_id, self.price, &self.order.id, now)?;
        orders::tell(conn, &self.recipients, &self.order, now)?;
        notifications::wallet_debited(conn, &self.recipients, self.alert, &debit, now)?;
        Ok(self.order)
    }
}

/// A wallet order at most once per idempotency key: the answer is stored in the
/// transaction of the debit, just before it. On PostgreSQL the usual order is written by
/// one statement first (see [`WalletOrderStatement`]); what that declines takes the
/// general path, which answers it.
pub async fn place_wallet_order(
    db: &Db,
    clock: &Clock,
    partner_id: String,
    request: OrderRequest,
    smdp_address: String,
    scope: Option<idempotency::Scope>,
) -> Result<HttpResponse, ApiError> {
    let now = clock.now_db();
    if let (Some(scope), Backend::Postgres) = (&scope, db.backend()) {
        let attempt = (partner_id.clone(), request.clone(), smdp_address.clone());
        if let Some(reply) = place_in_one_statement(db, attempt, scope.clone(), now).await? {
            db.metrics().wallet_order_path(true);
            return Ok(idempotency::respond(reply));
        }
    }
    db.metrics().wallet_order_path(false);
    idempotency::execute_in_stages(
        db,
        scope,
        move |conn| {
            let unpaid = prepare_wallet_order_in(conn, &partner_id, &request, &smdp_address, now)?;
            Ok((created(&unpaid.order)?, unpaid))
        },
        move |conn, unpaid| unpaid.take_payment_in(conn, now).map(drop),
    )
    .await
}

/// Why the one-statement order did not happen. Nothing of it was written either way.
enum NotInOneStatement {
    /// Not the usual case (a key already used, too little money or a wallet going below
    /// its alert amount, a refusal, a scheduled order): the general path answers it.
    Declined,
    Failed(ApiError),
}

impl From<ApiError> for NotInOneStatement {
    fn from(e: ApiError) -> Self {
        // A refusal is answered (and stored under the key) by the general path.
        if e.code().status().is_client_error() {
            Self::Declined
        } else {
            Self::Failed(e)
        }
    }
}

impl From<crate::db::DbError> for NotInOneStatement {
    fn from(e: crate::db::DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<diesel::result::Error> for NotInOneStatement {
    fn from(e: diesel::result::Error) -> Self {
        match &e {
            diesel::result::Error::DatabaseError(_, info)
                if info.message() == WalletOrderStatement::DECLINED =>
            {
                Self::Declined
            }
            _ => Self::Failed(e.into()),
        }
    }
}

/// A usual wallet order in two round trips on PostgreSQL, and no transaction of its own:
/// the read ([`plan_wallet_order_in`]: the card, partner, plan, price and receipt number
/// in one query; a partner with webhook endpoints adds their read, an eSIM of unknown
/// profile state one more), then one [`WalletOrderStatement`] that writes everything or,
/// declining, nothing. `None` when declined: the general path then runs
/// the order from the start and answers it. The reads are as current as the general
/// path's (each statement of a read-committed transaction reads afresh too); what must
/// hold at the write — the key new, the money there — is decided by the write itself.
async fn place_in_one_statement(
    db: &Db,
    (partner_id, request, smdp_address): (String, OrderRequest, String),
    scope: idempotency::Scope,
    now: NaiveDateTime,
) -> Result<Option<Reply>, ApiError> {
    if request.start_at.is_some() {
        return Ok(None);
    }
    let placed = db
        .run(move |conn| {
            let planned = plan_wallet_order_in(conn, &partner_id, &request, &smdp_address, now)?;
            let (DbConnection::Postgres(pg), Some(activation)) = (conn, &planned.activation) else {
                return Err(NotInOneStatement::Declined);
            };
            let reply = created(&planned.order)?;
            let paid = Order::try_from(&planned.order)?;
            let event = events::unnumbered(&planned.recipients, EventType::OrderPaid, &paid, now)?;
            let debit = wallet::debit_entry(&partner_id, planned.price, &planned.order.id, now)?;
            // A debit that would take the wallet below its alert amount has a low balance
            // to tell: it is declined to the general path, which tells it.
            let alert = planned.alert.unwrap_or(MinorUnits::ZERO);
            let _told: i64 = WalletOrderStatement {
                order: order_store::insert_part(&planned.order),
                activation: activation_store::insert_part(activation),
                claim: idempotency::AnsweredClaim::new(&scope, &reply, "written"),
                debit: wallet::store::DebitCtes::new(&debit, alert, now, Some("claim"))?,
                event: events::store::NumberedEventCtes::new(&event, Some("entry")),
                deliveries: events::deliveries_part(&planned.recipients, &event),
            }
            .get_result(pg)?;
            wallet::store::count_movement(&debit);
            order_store::count_status(&planned.order);
            Ok(reply)
        })
        .await;
    match placed {
        Ok(reply) => Ok(Some(reply)),
        Err(NotInOneStatement::Declined) => Ok(None),
        Err(NotInOneStatement::Failed(e)) => Err(e),
    }
}

/// Everything a usual wallet order writes, as one PostgreSQL statement (atomic on its own):
/// the order (`paid`, with its receipt number), its activation, the idempotency key with
/// its answer, the debit with its ledger entry, the numbered `order.paid` event and its
/// deliveries. The debit happens only if the key was new (`claim`) and the debit does not
/// cross the partner's low-balance alert, the event only if the money was taken (`entry`);
/// otherwise the statement fails with [`WalletOrderStatement::DECLINED`] (raised by
/// `simrenew_decline()`), which undoes all of it.
struct WalletOrderStatement<'a> {
    order: Box<dyn QueryFragment<Pg> + 'a>,
    activation: Box<dyn QueryFragment<Pg> + 'a>,
    claim: idempotency::AnsweredClaim<'a>,
    debit: wallet::store::DebitCtes<'a>,
    event: events::store::NumberedEventCtes<'a>,
    deliveries: events::delivery::DeliveriesCte<'a>,
}

impl WalletOrderStatement<'_> {
    /// The message of the error that declines (see the migration `one_statement_orders`).
    const DECLINED: &'static str = "simrenew: declined";
}

impl QueryFragment<Pg> for WalletOrderStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Each CTE reads the one before it, which makes PostgreSQL run them in this order:
        // the partner's contended rows (the wallet, then its event counter) are taken
        // after the order, its activation and the key are written. They stay locked
        // through the ledger entry, the event, its deliveries, the statement's foreign-key
        // checks (all made at its end) and the commit.
        out.push_sql("WITH placed AS (");
        self.order.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING 1), activated AS (");
        self.activation.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING 1), written AS (SELECT 1 FROM placed, activated), ");
        self.claim.walk(&mut out)?;
        out.push_sql(", ");
        self.debit.walk(&mut out)?;
        out.push_sql(", ");
        self.event.walk(&mut out)?;
        out.push_sql(", ");
        self.deliveries.walk(&mut out)?;
        out.push_sql(
            " SELECT CASE WHEN EXISTS (SELECT 1 FROM told) THEN 1 ELSE simrenew_decline() END",
        );
        Ok(())
    }
}

fixed_pg_statement!(WalletOrderStatement, BigInt);

fn provider_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(cause) | ProviderError::Unanswered(cause) => ApiError::new(
            ErrorCode::PaymentProviderUnavailable,
            format!("{cause}; nothing was charged yet: retry with the same Idempotency-Key"),
        )
        .with_header(header::RETRY_AFTER, header::HeaderValue::from_static("5")),
        ProviderError::Rejected(cause) => ApiError::new(
            ErrorCode::PaymentProviderRejected,
            format!("the payment provider refused this payment ({cause}); retrying will not help"),
        ),
    }
}

/// Writes an external order, `pending_payment` until the provider's webhook settles it.
/// Without a provider for its method it is `422 payment_method_unavailable` (after the
/// other checks).
fn insert_external_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    route: Result<&'static str, String>,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let priced = orders::price(conn, partner_id, request)?;
    let provider = route.map_err(|why| ApiError::new(ErrorCode::PaymentMethodUnavailable, why))?;
    orders::insert_pending(conn, partner_id, request, &priced, Some(provider), now)
}

/// Which provider takes `request`'s payment, or why none does here.
fn route_of(payments: &Payments, request: &OrderRequest) -> Result<&'static str, String> {
    let provider = payments.for_method(request.payment_method).ok_or_else(|| {
        format!(
            "`{}` payments are not enabled here; use `wallet`",
            request.payment_method
        )
    })?;
    match payments.refuses_currency(request.payment_method, request.currency) {
        Some(why) => Err(why),
        None => Ok(provider.name()),
    }
}

/// When the provider's payment page closes: with the order (its TTL) plus a margin, and
/// never sooner than the provider allows (Stripe: 30 minutes after creation).
fn payment_expires_at(
    order: &OrderRow,
    ttl: std::time::Duration,
    now: NaiveDateTime,
) -> chrono::DateTime<chrono::Utc> {
    let ttl = TimeDelta::from_std(ttl).unwrap_or(TimeDelta::minutes(30));
    let with_the_order = order.created_at + ttl + PAYMENT_PAGE_MARGIN;
    let earliest_allowed = now + MIN_PAYMENT_PAGE_LIFETIME + PAYMENT_PAGE_MARGIN;
    time::from_db(with_the_order.max(earliest_allowed))
}

/// Stripe's shortest Checkout Session lifetime
/// (https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at).
const MIN_PAYMENT_PAGE_LIFETIME: TimeDelta = TimeDelta::minutes(30);
/// Slack between the order's expiry and the page's, so that clocks that differ a
/// little never let the page outlive a closed order by much, nor close before it.
const PAYMENT_PAGE_MARGIN: TimeDelta = TimeDelta::minutes(2);

/// An external payment in three steps, each safe to interrupt: (1) the order, committed
/// with the idempotency key pointing at it; (2) the provider's payment, made outside any
/// transaction, with the order id as the provider's idempotency key; (3) the provider's
/// reference and the answer, stored together. A retry with the same key resumes at the
/// step that did not finish, so a failure never leaves a charge without an order.
pub async fn place_external_order(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    partner_id: String,
    request: OrderRequest,
    scope: idempotency::Scope,
) -> Result<HttpResponse, ApiError> {
    let mut held = match idempotency::start(db, scope).await? {
        idempotency::Start::Replay(response) => return Ok(response),
        idempotency::Start::Held(held) => held,
    };
    // Step 1: the order (or the one an interrupted attempt committed).
    let order = match held.resource_id.clone() {
        Some(order_id) => {
            let found = db
                .run(move |conn| {
                    order_store::find(conn, &order_id)?.ok_or_else(|| orders::no_order(&order_id))
                })
                .await;
            match found {
                Ok(order) => order,
                Err(e) => {
                    held.release(db, true).await;
                    return Err(e);
                }
            }
        }
        None => {
            let attach = held.clone();
            let route = route_of(payments, &request);
            let now = clock.now_db();
            let made = db
                .transaction(move |conn| {
                    let order = insert_external_order_in(conn, &partner_id, &request, route, now)?;
                    attach.attach(conn, &order.id)?;
                    Ok::<_, ApiError>(order)
                })
                .await;
            match made {
                Ok(order) => {
                    held.resource_id = Some(order.id.clone());
                    order
                }
                Err(e) if e.code().status().is_client_error() => return held.refuse(db, &e).await,
                Err(e) => {
                    held.release(db, false).await;
                    return Err(e);
                }
            }
        }
    };
    // Step 2: the provider's payment, outside any transaction.
    let payment = if order.provider_payment_id.is_none()
        && order.provider_session_id.is_none()
        && order.status == OrderStatus::PendingPayment
    {
        let provider = order
            .provider
            .as_deref()
            .and_then(|name| payments.by_name(name));
        let Some(provider) = provider else {
            held.release(db, true).await;
            return Err(ApiError::internal(
                "the order's payment provider is not configured",
            ));
        };
        let request = PaymentRequest {
            order_id: &order.id,
            iccid: &order.iccid,
            method: order.payment_method,
            amount: order.amount,
            currency: order.currency,
            attempt: order.provider_attempt,
            expires_at: payment_expires_at(&order, payments.order_ttl, clock.now_db()),
        };
        match provider.create_payment(&request).await {
            Ok(payment) => Some(payment),
            // Retrying the same would be refused the same way: that answer is the answer.
            Err(rejected @ ProviderError::Rejected(_)) => {
                return held.refuse(db, &provider_error(rejected)).await
            }
            Err(unavailable) => {
                // The provider keeps its answer to a key (failures too): after an
                // answered failure, the retry this answer invites must reach it under a
                // new key. Without an answer the payment may exist: keep the key.
                if matches!(unavailable, ProviderError::Unavailable(_)) {
                    let order_id = order.id.clone();
                    let bumped = db
                        .transaction(move |conn| {
                            order_store::next_provider_attempt(conn, &order_id)
                                .map_err(ApiError::from)
                        })
                        .await;
                    if let Err(e) = bumped {
                        tracing::warn!(error = %e, "could not record a failed provider attempt");
                    }
                }
                held.release(db, true).await;
                return Err(provider_error(unavailable));
            }
        }
    } else {
        None
    };
    // Step 3: the provider's reference and the answer, together.
    let keeper = held.clone();
    let now = clock.now_db();
    let stored = db
        .transaction(move |conn| {
            let order = match &payment {
                Some(payment) => orders::attach_payment(
                    conn,
                    &order,
                    payment.payment_id.as_deref(),
                    payment.session_id.as_deref(),
                    &payment.next_action,
                    now,
                )?,
                None => order,
            };
            let reply = created(&order)?;
            keeper.complete(conn, &reply)?;
            Ok::<_, ApiError>(reply)
        })
        .await;
    match stored {
        Ok(reply) => Ok(idempotency::respond(reply)),
        Err(e) => {
            held.release(db, true).await;
            Err(e)
        }
    }
}

//! Orders as stored, shown, and placed.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::state::OrderStatus;
use crate::db::schema::orders;
use crate::db::stored_uuid;
use crate::domain::{time, Currency, Iccid, MinorUnits, NextAction, PaymentMethod};
use crate::error::ApiError;

crate::db::stored_enum! {
    /// Where the order's money stands.
    #[derive(ToSchema)]
    pub enum PaymentStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
        Refunded = "refunded",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
// None is written as NULL, not DEFAULT (the same for every nullable column here), so
// the INSERT's text never changes and PostgreSQL prepares it once per connection.
#[diesel(table_name = orders, treat_none_as_default_value = false)]
pub struct OrderRow {
    pub id: String,
    pub partner_id: String,
    pub iccid: String,
    pub plan_id: String,
    pub status: OrderStatus,
    pub amount: MinorUnits,
    pub currency: Currency,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub receipt_number: Option<String>,
    pub client_reference: Option<String>,
    pub refunded_amount: Option<MinorUnits>,
    pub refunded_at: Option<NaiveDateTime>,
    pub paid_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub provider: Option<String>,
    pub provider_payment_id: Option<String>,
    pub next_action: Option<String>,
    pub provider_session_id: Option<String>,
    pub provider_attempt: i32,
    pub provider_closed_at: Option<NaiveDateTime>,
    pub payment_issue: Option<String>,
    /// A scheduled order: its activation is made at this moment, not when it is paid.
    pub start_at: Option<NaiveDateTime>,
}

impl OrderRow {
    /// Paid for a later start that has not come yet at `now` (its activation does not
    /// exist yet).
    pub fn waits_for_start(&self, now: NaiveDateTime) -> bool {
        self.start_at.is_some_and(|start| start > now)
    }

    /// A provider's payment was taken for this order and is not (yet) given back.
    pub fn holds_external_payment(&self) -> bool {
        self.provider.is_some() && self.payment_status == PaymentStatus::Succeeded
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// External payments: which provider holds the payment.
    pub provider: Option<String>,
    /// External payments awaiting the payer: what to do next.
    pub next_action: Option<NextAction>,
    /// The last problem with this order's payment: a declined attempt (the payer can
    /// still pay), or a payment that did not match the order (it is refunded).
    pub issue: Option<String>,
}

/// Money returned to the payer so far (the refunds themselves: `GET /v1/orders/{id}/refunds`).
/// Named apart from `payments::refunds::Refund`: one component name per schema.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundedTotal {
    #[schema(value_type = i64)]
    pub amount: MinorUnits,
    #[schema(value_type = String, example = "CNY")]
    pub currency: Currency,
    pub refunded_at: DateTime<Utc>,
}

/// An order: one renewal of one card with one plan, at the price of the day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: uuid::Uuid,
    #[schema(value_type = String, example = "89860012345678901238")]
    pub iccid: String,
    pub plan_id: uuid::Uuid,
    pub status: OrderStatus,
    /// The price when the order was placed, in minor units; later price changes do not alter it.
    #[schema(value_type = i64, example = 3900)]
    pub amount: MinorUnits,
    #[schema(value_type = String, example = "CNY")]
    pub currency: Currency,
    pub payment: Payment,
    /// The receipt (交易凭证) number, once paid: `R-YYYYMMDD-N`, the day paid and a number
    /// (six digits or more) that is unique and grows across days.
    #[schema(example = "R-20261125-000123")]
    pub receipt_number: Option<String>,
    pub client_reference: Option<String>,
    pub refund: Option<RefundedTotal>,
    pub paid_at: Option<DateTime<Utc>>,
    /// When it reached a final state (completed, failed, cancelled, expired).
    pub closed_at: Option<DateTime<Utc>>,
    /// A scheduled order: when its renewal starts (its activation is made then; until
    /// then it can be cancelled with a full refund). `null`: at once.
    pub start_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&OrderRow> for Order {
    type Error = ApiError;

    fn try_from(row: &OrderRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            iccid: row.iccid.clone(),
            plan_id: stored_uuid(&row.plan_id)?,
            status: row.status,
            amount: row.amount,
            currency: row.currency,
            payment: Payment {
                method: row.payment_method,
                status: row.payment_status,
                provider: row.provider.clone(),
                next_action: match (row.status, &row.next_action) {
                    (OrderStatus::PendingPayment, Some(json)) => {
                        Some(serde_json::from_str(json).map_err(ApiError::internal)?)
                    }
                    _ => None,
                },
                issue: row.payment_issue.clone(),
            },
            receipt_number: row.receipt_number.clone(),
            client_reference: row.client_reference.clone(),
            refund: match (row.refunded_amount, row.refunded_at) {
                (Some(amount), Some(at)) => Some(RefundedTotal {
                    amount,
                    currency: row.currency,
                    refunded_at: time::from_db(at),
                }),
                _ => None,
            },
            paid_at: row.paid_at.map(time::from_db),
            closed_at: row.closed_at.map(time::from_db),
            start_at: row.start_at.map(time::from_db),
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub data: Vec<Order>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/orders`. Unknown fields are refused, so `amount`, `status` or `partner_id`
/// can never be set by a client.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// 18–20 digits ending in a Luhn check digit.
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub plan_id: uuid::Uuid,
    /// ISO 4217; the plan must be priced in it.
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    pub payment_method: PaymentMethod,
    /// Your own reference, echoed back (at most 100 characters).
    #[schema(max_length = 100)]
    pub client_reference: Option<String>,
    /// Schedule the renewal: paid now, it starts at this moment (up to 12 months ahead).
    /// An FM term begins then, or where the current term ends if that is later; an eSIM
    /// gets its activation then. Until it starts the order can be cancelled with a full
    /// refund. A card holds at most 50 scheduled orders.
    pub start_at: Option<DateTime<Utc>>,
}

/// `GET /v1/orders` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// One of the order statuses.
    #[param(value_type = Option<crate::orders::model::OrderStatus>)]
    pub status: Option<String>,
    #[param(value_type = Option<crate::domain::Iccid>)]
    pub iccid: Option<String>,
    /// RFC 3339; orders created at or after it.
    pub created_after: Option<DateTime<Utc>>,
    /// RFC 3339; orders created before it.
    pub created_before: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A `NewOrder` whose every field parsed: what the checkout works with.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub iccid: Iccid,
    pub plan_id: uuid::Uuid,
    pub currency: Currency,
    pub payment_method: PaymentMethod,
    pub client_reference: Option<String>,
    pub start_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub iccid: Option<String>,
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
}

//! Orders as stored, shown, and placed.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::state::OrderStatus;
use crate::db::schema::orders;
use crate::domain::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// The partner's prepaid wallet: charged at once, the order is `paid` on creation.
    Wallet,
    /// A bank card (credit or debit) through the payment provider.
    Card,
    Alipay,
    WechatPay,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Wallet => "wallet",
            PaymentMethod::Card => "card",
            PaymentMethod::Alipay => "alipay",
            PaymentMethod::WechatPay => "wechat_pay",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "card" => PaymentMethod::Card,
            "alipay" => PaymentMethod::Alipay,
            "wechat_pay" => PaymentMethod::WechatPay,
            _ => PaymentMethod::Wallet,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            "refunded" => PaymentStatus::Refunded,
            _ => PaymentStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: String,
    pub partner_id: String,
    pub iccid: String,
    pub plan_id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub payment_status: String,
    pub receipt_number: Option<String>,
    pub client_reference: Option<String>,
    pub refunded_amount: Option<i64>,
    pub refunded_at: Option<NaiveDateTime>,
    pub paid_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub provider: Option<String>,
    pub provider_payment_id: Option<String>,
    pub next_action: Option<String>,
    pub provider_refund_id: Option<String>,
}

impl OrderRow {
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status).unwrap_or(OrderStatus::Failed)
    }

    pub fn method(&self) -> PaymentMethod {
        PaymentMethod::parse(&self.payment_method)
    }
}

/// What the client must do to pay an external payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// Send the payer to `url` (bank card 3-D Secure, Alipay's page).
    RedirectToUrl { url: String },
    /// Show `data` as a QR code for the payer to scan (WeChat Pay, Alipay).
    DisplayQrCode {
        data: String,
        image_url: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// External payments: which provider holds the payment.
    pub provider: Option<String>,
    /// External payments awaiting the payer: what to do next.
    pub next_action: Option<NextAction>,
}

/// Money returned to the payer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub amount: i64,
    #[schema(value_type = String, example = "CNY")]
    pub currency: String,
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
    #[schema(example = 3900)]
    pub amount: i64,
    #[schema(value_type = String, example = "CNY")]
    pub currency: String,
    pub payment: Payment,
    /// The receipt (交易凭证) number, once paid: `R-YYYYMMDD-NNNNNN`.
    #[schema(example = "R-20261125-000123")]
    pub receipt_number: Option<String>,
    pub client_reference: Option<String>,
    pub refund: Option<Refund>,
    pub paid_at: Option<DateTime<Utc>>,
    /// When it reached a final state (completed, failed, cancelled, expired).
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&OrderRow> for Order {
    fn from(row: &OrderRow) -> Self {
        Self {
            id: uuid::Uuid::parse_str(&row.id).unwrap_or_default(),
            iccid: row.iccid.clone(),
            plan_id: uuid::Uuid::parse_str(&row.plan_id).unwrap_or_default(),
            status: row.status(),
            amount: row.amount,
            currency: row.currency.clone(),
            payment: Payment {
                method: row.method(),
                status: PaymentStatus::parse(&row.payment_status),
                provider: row.provider.clone(),
                next_action: match (row.status(), &row.next_action) {
                    (OrderStatus::PendingPayment, Some(json)) => serde_json::from_str(json).ok(),
                    _ => None,
                },
            },
            receipt_number: row.receipt_number.clone(),
            client_reference: row.client_reference.clone(),
            refund: match (row.refunded_amount, row.refunded_at) {
                (Some(amount), Some(at)) => Some(Refund {
                    amount,
                    currency: row.currency.clone(),
                    refunded_at: time::from_db(at),
                }),
                _ => None,
            },
            paid_at: row.paid_at.map(time::from_db),
            closed_at: row.closed_at.map(time::from_db),
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        }
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
    #[schema(example = "89860012345678901238")]
    pub iccid: String,
    pub plan_id: uuid::Uuid,
    /// ISO 4217; the plan must be priced in it.
    #[schema(example = "CNY")]
    pub currency: String,
    pub payment_method: PaymentMethod,
    /// Your own reference, echoed back (at most 100 characters).
    pub client_reference: Option<String>,
}

/// `GET /v1/orders` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// One of the order statuses.
    pub status: Option<String>,
    pub iccid: Option<String>,
    /// RFC 3339; orders created at or after it.
    pub created_after: Option<DateTime<Utc>>,
    /// RFC 3339; orders created before it.
    pub created_before: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub iccid: Option<String>,
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
}

//! Receipts (交易凭证): what a paid order was, as a document a buyer keeps — JSON, and a
//! printable page in the request's language (inline styles, no external assets, CJK
//! text as UTF-8). Read from the order, its partner, plan, activation and refunds.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::activation::{self, Caller};
use crate::catalog::store as catalog_store;
use crate::db::{stored_uuid, Db};
use crate::domain::{time, CardType, Currency, MinorUnits, Money, PaymentMethod};
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Lang;
use crate::orders::model::RefundedTotal;
use crate::orders::state::OrderStatus;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptParty {
    /// The partner's id (the buyer); `null` for the seller.
    pub id: Option<uuid::Uuid>,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptCard {
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub card_type: CardType,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptPlan {
    pub id: uuid::Uuid,
    pub code: String,
    pub name: String,
    pub validity_days: i32,
}

/// The service period bought, once the renewal took effect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptPeriod {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptPayment {
    pub method: PaymentMethod,
    /// External payments: the provider.
    pub provider: Option<String>,
    /// External payments: the provider's payment id.
    pub provider_reference: Option<String>,
}

/// A paid order's receipt (交易凭证).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    #[schema(example = "R-20261125-000123")]
    pub receipt_number: String,
    pub order_id: uuid::Uuid,
    pub status: OrderStatus,
    pub seller: ReceiptParty,
    pub buyer: ReceiptParty,
    pub card: ReceiptCard,
    pub plan: ReceiptPlan,
    /// `null` until the renewal took effect.
    pub period: Option<ReceiptPeriod>,
    /// Minor units.
    #[schema(value_type = i64, example = 3900)]
    pub amount: MinorUnits,
    #[schema(value_type = crate::domain::Currency)]
    pub currency: Currency,
    pub payment: ReceiptPayment,
    /// Money given back, if any.
    pub refund: Option<RefundedTotal>,
    pub ordered_at: DateTime<Utc>,
    pub paid_at: DateTime<Utc>,
}

/// The receipt of one of the partner's paid orders (`409` before it is paid), the plan
/// named in `lang`.
pub async fn receipt(
    db: &Db,
    seller: String,
    partner_id: String,
    order_id: String,
    lang: Lang,
) -> Result<Receipt, ApiError> {
    db.run(move |conn| {
        let caller = Caller::Partner(partner_id.clone());
        let order = activation::load_order(conn, &caller, &order_id)?;
        let (Some(receipt_number), Some(paid_at)) = (order.receipt_number.clone(), order.paid_at)
        else {
            return Err(ApiError::new(
                ErrorCode::InvalidStateTransition,
                format!(
                    "the order is {}; a receipt exists once it is paid",
                    order.status
                ),
            ));
        };
        let buyer = crate::partners::store::find_partner(conn, &order.partner_id)?
            .ok_or_else(|| ApiError::internal("an order's partner is missing"))?;
        let plan = catalog_store::find_by_id(conn, &order.plan_id)?
            .ok_or_else(|| ApiError::internal("an order's plan is missing"))?;
        let card = crate::cards::store::find_card(conn, &order.iccid)?
            .ok_or_else(|| ApiError::internal("an order's card is missing"))?;
        let activation = activation::store::find(conn, &order.id)?;
        let period = activation.and_then(|a| match (a.effective_from, a.valid_until) {
            (Some(from), Some(until)) => Some(ReceiptPeriod {
                from: time::from_db(from),
                until: time::from_db(until),
            }),
            _ => None,
        });
        Ok(Receipt {
            receipt_number,
            order_id: stored_uuid(&order.id)?,
            status: order.status,
            seller: ReceiptParty {
                id: None,
                name: seller,
            },
            buyer: ReceiptParty {
                id: Some(stored_uuid(&buyer.id)?),
                name: buyer.name,
            },
            card: ReceiptCard {
                iccid: card.iccid,
                card_type: card.card_type,
            },
            plan: ReceiptPlan {
                id: stored_uuid(&plan.id)?,
                name: plan.texts(lang).0,
                code: plan.code,
                validity_days: plan.validity_days,
            },
            period,
            amount: order.amount,
            currency: order.currency,
            payment: ReceiptPayment {
                method: order.payment_method,
                provider: order.provider.clone(),
                provider_reference: order.provider_payment_id.clone(),
            },
            refund: match (order.refunded_amount, order.refunded_at) {
                (Some(amount), Some(at)) => Some(RefundedTotal {
                    amount,
                    currency: order.currency,
                    refunded_at: time::from_db(at),
                }),
                _ => None,
            },
            ordered_at: time::from_db(order.created_at),
            paid_at: time::from_db(paid_at),
        })
    })
    .await
}

/// Text made safe to place in HTML (element content and quoted attributes).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The receipt as a printable page in `lang`.
pub fn html(receipt: &Receipt, lang: Lang) -> String {
    let t = |en: &'static str, zh: &'static str| lang.pick(en, zh);
    let money = |amount: MinorUnits| Money::new(amount, receipt.currency).to_string();
    let method = match receipt.payment.method {
        PaymentMethod::Wallet => t("Prepaid wallet", "预付钱包"),
        PaymentMethod::Card => t("Bank card", "银行卡"),
        PaymentMethod::Alipay => t("Alipay", "支付宝"),
        PaymentMethod::WechatPay => t("WeChat Pay", "微信支付"),
    };
    let card_type = match receipt.card.card_type {
        CardType::Fm => t("FM card (renewed over the air)", "FM 卡（空中续费）"),
        CardType::Esim => "eSIM",
    };
    let mut rows: Vec<(&str, String)> = vec![
        (
            t("Receipt number", "凭证号"),
            receipt.receipt_number.clone(),
        ),
        (t("Order", "订单号"), receipt.order_id.to_string()),
        (t("Seller", "销售方"), receipt.seller.name.clone()),
        (t("Buyer", "购买方"), receipt.buyer.name.clone()),
        (
            t("Card", "卡号 (ICCID)"),
            format!("{} · {card_type}", receipt.card.iccid),
        ),
        (
            t("Plan", "套餐"),
            format!(
                "{} ({}), {} {}",
                receipt.plan.name,
                receipt.plan.code,
                receipt.plan.validity_days,
                t("days", "天")
            ),
        ),
    ];
    if let Some(period) = &receipt.period {
        rows.push((
            t("Service period", "服务期"),
            format!("{} – {}", when(period.from), when(period.until)),
        ));
    }
    rows.push((t("Amount", "金额"), money(receipt.amount)));
    rows.push((t("Payment", "支付方式"), method.to_owned()));
    if let Some(reference) = &receipt.payment.provider_reference {
        rows.push((t("Payment reference", "支付流水号"), reference.clone()));
    }
    if let Some(refund) = &receipt.refund {
        rows.push((
            t("Refunded", "已退款"),
            format!("{} ({})", money(refund.amount), when(refund.refunded_at)),
        ));
    }
    rows.push((t("Ordered", "下单时间"), when(receipt.ordered_at)));
    rows.push((t("Paid", "支付时间"), when(receipt.paid_at)));
    let body: String = rows
        .iter()
        .map(|(label, value)| {
            format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                escape(label),
                escape(value)
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} {number}</title>
<style>
body {{ font-family: "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", "Helvetica Neue", Arial, sans-serif; margin: 2rem auto; max-width: 40rem; color: #111; }}
h1 {{ font-size: 1.4rem; margin-bottom: 0.2rem; }}
p.note {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 0.45rem 0.6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ width: 11rem; color: #444; font-weight: 600; }}
@media print {{ body {{ margin: 0; }} }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">{note}</p>
<table>
{body}</table>
</body>
</html>
"#,
        lang = lang.tag(),
        title = escape(t("Receipt", "交易凭证")),
        number = escape(&receipt.receipt_number),
        note = escape(t(
            "Keep this receipt: quote its number when you contact support.",
            "请妥善保存本凭证；联系客服时请提供凭证号。"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("交易凭证"), "交易凭证");
    }
}

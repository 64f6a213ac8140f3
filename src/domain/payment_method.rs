//! How an order is paid.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

crate::db::stored_enum! {
    /// How an order is paid.
    #[derive(ToSchema)]
    pub enum PaymentMethod {
        /// The partner's prepaid wallet: charged at once, the order is `paid` on creation.
        Wallet = "wallet",
        /// A bank card (credit or debit) through the payment provider.
        Card = "card",
        Alipay = "alipay",
        WechatPay = "wechat_pay",
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

//! The sandbox provider, for development and `--demo`: the same flow as a real provider,
//! completed by `POST /v1/sandbox/payments/{order_id}/succeed` or `/fail`.

use super::{CreatedPayment, PaymentRequest, ProviderRefund, ProviderRefundStatus, RefundRequest};
use crate::domain::{NextAction, PaymentMethod};

#[derive(Debug, Default)]
pub struct Sandbox;

impl Sandbox {
    pub fn create_payment(&self, order: &PaymentRequest<'_>) -> CreatedPayment {
        let id = format!("sbx_pay_{}", order.order_id.replace('-', ""));
        let next_action = match order.method {
            PaymentMethod::Card => NextAction::RedirectToUrl {
                url: format!("https://sandbox.simrenew.test/pay/{id}"),
            },
            _ => NextAction::DisplayQrCode {
                data: format!("sandbox://pay/{id}"),
                image_url: None,
            },
        };
        CreatedPayment {
            payment_id: Some(id),
            session_id: None,
            next_action,
        }
    }

    /// Sandbox refunds succeed at once.
    pub fn refund(&self, refund: &RefundRequest<'_>) -> ProviderRefund {
        ProviderRefund {
            refund_id: format!("sbx_refund_{}", refund.refund_id.replace('-', "")),
            status: ProviderRefundStatus::Succeeded,
            failure_reason: None,
        }
    }
}

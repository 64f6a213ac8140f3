//! The order state machine: one transition function every path (HTTP, CLI, webhook,
//! expiry, activation) goes through. No transition skips a state or repeats one.
//!
//! ```text
//! pending_payment ──payment succeeded──▶ paid ──activation confirmed──▶ completed
//!   │  │  └─payment failed──▶ failed      │ └─activation failed──▶ failed
//!   │  └─cancel──▶ cancelled ◀──cancel────┘
//!   └─30 min unpaid──▶ expired                 completed ──refund──▶ refunded
//! ```

use utoipa::ToSchema;

crate::db::stored_enum! {
    /// Where an order stands: `pending_payment` → `paid` → `completed`, or a side exit:
    /// `failed`, `cancelled`, `expired` (unpaid after the order TTL), `refunded`.
    #[derive(ToSchema)]
    pub enum OrderStatus {
        PendingPayment = "pending_payment",
        Paid = "paid",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Expired = "expired",
        Refunded = "refunded",
    }
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    PaymentSucceeded,
    PaymentFailed,
    Cancel,
    Expire,
    ActivationConfirmed,
    ActivationFailed,
    Refund,
}

impl OrderEvent {
    pub fn describe(self) -> &'static str {
        match self {
            OrderEvent::PaymentSucceeded => "mark it paid",
            OrderEvent::PaymentFailed => "fail its payment",
            OrderEvent::Cancel => "cancel it",
            OrderEvent::Expire => "expire it",
            OrderEvent::ActivationConfirmed => "complete its activation",
            OrderEvent::ActivationFailed => "fail its activation",
            OrderEvent::Refund => "refund it",
        }
    }
}

/// The state `event` leads to from `from`, or `None` when the event is not allowed there.
pub fn next(from: OrderStatus, event: OrderEvent) -> Option<OrderStatus> {
    use OrderEvent as E;
    use OrderStatus as S;
    match (from, event) {
        (S::PendingPayment, E::PaymentSucceeded) => Some(S::Paid),
        (S::PendingPayment, E::PaymentFailed) => Some(S::Failed),
        (S::PendingPayment, E::Cancel) => Some(S::Cancelled),
        (S::PendingPayment, E::Expire) => Some(S::Expired),
        (S::Paid, E::Cancel) => Some(S::Cancelled),
        (S::Paid, E::ActivationConfirmed) => Some(S::Completed),
        (S::Paid, E::ActivationFailed) => Some(S::Failed),
        (S::Completed, E::Refund) => Some(S::Refunded),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [OrderEvent; 7] = [
        OrderEvent::PaymentSucceeded,
        OrderEvent::PaymentFailed,
        OrderEvent::Cancel,
        OrderEvent::Expire,
        OrderEvent::ActivationConfirmed,
        OrderEvent::ActivationFailed,
        OrderEvent::Refund,
    ];

    #[test]
    fn the_happy_path_goes_pending_paid_completed() {
        let paid = next(OrderStatus::PendingPayment, OrderEvent::PaymentSucceeded).unwrap();
        assert_eq!(paid, OrderStatus::Paid);
        assert_eq!(
            next(paid, OrderEvent::ActivationConfirmed),
            Some(OrderStatus::Completed)
        );
    }

    #[test]
    fn nothing_skips_or_repeats_a_state() {
        assert_eq!(
            next(OrderStatus::PendingPayment, OrderEvent::ActivationConfirmed),
            None,
            "no skipping paid"
        );
        assert_eq!(
            next(OrderStatus::Paid, OrderEvent::PaymentSucceeded),
            None,
            "no paying twice"
        );
        assert_eq!(
            next(OrderStatus::Completed, OrderEvent::Cancel),
            None,
            "no cancelling after activation"
        );
        assert_eq!(
            next(OrderStatus::Paid, OrderEvent::Expire),
            None,
            "paid orders do not expire"
        );
        for &state in OrderStatus::ALL {
            for event in EVENTS {
                if let Some(to) = next(state, event) {
                    assert_ne!(to, state, "{state:?} --{event:?}--> itself");
                }
            }
        }
    }

    #[test]
    fn final_states_accept_nothing_but_a_completed_refund() {
        for state in [
            OrderStatus::Failed,
            OrderStatus::Cancelled,
            OrderStatus::Expired,
            OrderStatus::Refunded,
        ] {
            for event in EVENTS {
                assert_eq!(next(state, event), None, "{state:?} + {event:?}");
            }
        }
        assert_eq!(
            next(OrderStatus::Completed, OrderEvent::Refund),
            Some(OrderStatus::Refunded)
        );
    }

    #[test]
    fn status_names_round_trip() {
        for &state in OrderStatus::ALL {
            assert_eq!(state.as_str().parse::<OrderStatus>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}

//! Value types that validate on construction: once you hold one, it is valid.

pub mod card_type;
pub mod country;
pub mod identifiers;
pub mod integral;
pub mod money;
pub mod partner_status;
pub mod payment_method;
pub mod profile_state;
pub mod time;

pub use card_type::CardType;
pub use country::Country;
pub use identifiers::{CardPath, Eid, Iccid, Msisdn};
pub use money::{Currency, MinorUnits, Money};
pub use partner_status::PartnerStatus;
pub use payment_method::{NextAction, PaymentMethod};
pub use profile_state::ProfileState;

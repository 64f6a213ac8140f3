//! Whether a partner may use the API.

use utoipa::ToSchema;

crate::db::stored_enum! {
    /// `suspended` partners' tokens stop working and no new ones are issued.
    #[derive(ToSchema)]
    pub enum PartnerStatus {
        Active = "active",
        Suspended = "suspended",
    }
}

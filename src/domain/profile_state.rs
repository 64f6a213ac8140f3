//! Where an eSIM profile stands, as the SM-DP+ reports it (the normalised states of
//! SGP.22 ES2+ download progress notifications).

crate::db::stored_enum! {
    /// An eSIM profile's state on the SM-DP+ and the device.
    #[derive(utoipa::ToSchema)]
    pub enum ProfileState {
        /// The profile was prepared and its activation code may be used.
        Released = "released",
        /// The device downloaded the profile.
        Downloaded = "downloaded",
        /// The profile is installed on the device.
        Installed = "installed",
        /// The profile is the device's active one.
        Enabled = "enabled",
        /// Installed but switched off by the subscriber.
        Disabled = "disabled",
        /// Removed from the device; a new activation code is needed to use it again.
        Deleted = "deleted",
        /// The download or installation failed (`reason` says why).
        Error = "error",
    }
}

impl ProfileState {
    /// The profile is on the device (whether switched on or not).
    pub fn is_installed(self) -> bool {
        matches!(self, Self::Installed | Self::Enabled | Self::Disabled)
    }
}

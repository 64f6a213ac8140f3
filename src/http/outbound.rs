//! Outbound HTTPS (payment provider, SMS provider, partners' webhook endpoints) through
//! rustls with the `ring` provider: no system TLS library is needed to build or run.

use std::sync::Once;

/// A client builder for outbound calls, with the TLS provider installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// Installs `ring` as the process's rustls provider, once. Another provider installed
/// before (by an embedding program) is kept.
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

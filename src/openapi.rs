//! The OpenAPI 3.1 document: the root written here, every path and schema gathered
//! from the handlers as they are registered (see `app::api_document`).

use utoipa::OpenApi;

use crate::error::{ErrorCode, FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "simrenew",
        description = "Renewal (top-up) API for FM cards (physical SIMs renewed over the air) and eSIMs: \
what is left on a card, which plans fit it, buying one exactly once, and confirming it took effect.\n\n\
Conventions: JSON with snake_case fields; timestamps are RFC 3339 in UTC; ids are UUIDs; money is an \
integer amount in the currency's minor unit with an ISO 4217 code. Every error is RFC 9457 \
`application/problem+json` with a stable machine `code`. Every response carries `X-Request-Id`.",
        license(name = "Proprietary", identifier = "LicenseRef-Proprietary"),
    ),
    components(schemas(Problem, FieldError, ErrorCode)),
    tags(
        (name = "operations", description = "Liveness, readiness and metrics for the platform running the service."),
    )
)]
pub struct ApiDoc;

/// The document as served at `/openapi.json` and committed under `openapi/`.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::app::api_document()
}

/// The committed form: pretty JSON with a trailing newline.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

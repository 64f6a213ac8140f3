//! The OpenAPI 3.1 document: the root written here, every path and schema gathered
//! from the handlers as they are registered (see `app::document`).

use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::auth::scopes::Scope;
use crate::error::{ErrorCode, FieldError, OAuthError, OAuthErrorCode, Problem};

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
    components(schemas(Problem, FieldError, ErrorCode, OAuthError, OAuthErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "OAuth2 client credentials: exchange a client id and secret for a short-lived bearer token."),
        (name = "catalog", description = "The plans on sale and device eSIM compatibility (scope `catalog:read`)."),
        (name = "cards", description = "Your cards, their terms and balances (scope `cards:read`)."),
        (name = "orders", description = "Buy a plan for a card, exactly once (scopes `orders:read`, `orders:write`)."),
        (name = "activation", description = "Install or deliver a paid renewal and confirm it took effect, with the new validity."),
        (name = "wallet", description = "Your prepaid wallet and its ledger (scope `wallet:read`)."),
        (name = "payments", description = "Payment providers' signed webhooks that settle external payments."),
        (name = "sandbox", description = "The sandbox payment provider, served only when it is enabled (development, `--demo`)."),
        (name = "network", description = "Calls from the mobile network (scope `network`): usage records."),
        (name = "admin", description = "Operator endpoints (scope `admin`): partners, credentials, plans, devices."),
        (name = "operations", description = "Liveness, readiness and metrics for the platform running the service."),
    )
)]
pub struct ApiDoc;

/// `bearer` (a JWT from the token endpoint) and `oauth2` (the client-credentials flow
/// that issues it, with every scope).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `POST /v1/oauth/token`."))
                    .build(),
            ),
        );
        let scopes = Scopes::from_iter(Scope::ALL.iter().map(|s| (s.as_str(), s.description())));
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/v1/oauth/token",
                    scopes,
                ))],
                "OAuth 2.0 client credentials (RFC 6749 §4.4). Tokens live 15 minutes by default.",
            )),
        );
    }
}

/// Completes the gathered document: every protected operation documents its `401` and
/// `403` problems (written once here rather than on every handler).
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            describe_bare_responses(operation);
            name_optional_request_body(operation);
            let protected = operation.security.as_ref().is_some_and(|requirements| {
                requirements.iter().any(|requirement| {
                    serde_json::to_value(requirement).is_ok_and(|v| v != serde_json::json!({}))
                })
            });
            if !protected {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                problem("Missing, invalid, expired or revoked access token (`WWW-Authenticate: Bearer`).").into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                problem("The token lacks the scope this operation requires.").into()
            });
        }
    }
    doc
}

/// Generators require a description on every response; where a handler gave none,
/// the standard reason phrase stands in.
fn describe_bare_responses(operation: &mut utoipa::openapi::path::Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        if let utoipa::openapi::RefOr::T(response) = response {
            if response.description.trim().is_empty() {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                    .and_then(|code| code.canonical_reason())
                    .unwrap_or("Response");
                response.description = reason.to_owned();
            }
        }
    }
}

/// utoipa writes an optional body (`Option<Json<T>>`) as `oneOf: [T, null]`; generators
/// want the named schema, with the body marked not required.
fn name_optional_request_body(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{RefOr, Required};
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    let RefOr::T(body) = body else {
        return;
    };
    let mut unwrapped = false;
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let named: Vec<_> = one_of
            .items
            .iter()
            .filter(|item| matches!(item, RefOr::Ref(_)))
            .cloned()
            .collect();
        if named.len() == 1 && one_of.items.len() == 2 {
            content.schema = named.into_iter().next();
            unwrapped = true;
        }
    }
    if unwrapped {
        body.required = Some(Required::False);
    }
}

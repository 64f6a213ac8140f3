//! The OpenAPI 3.1 document: the root written here, every path and schema gathered
//! from the handlers as they are registered (see `app::document`).

use serde_json::{json, Value};
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
integer amount in the currency's minor unit with an ISO 4217 code. Integers may be written `39` or \
`39.0` (JSON Schema counts both as integers); `39.5` is refused. \
Rate limits: each partner has a request quota per instance (default 20 requests a second, 40 at once); every \
answer to an authenticated request carries `RateLimit-Policy` and `RateLimit`, and a spent quota answers `429` \
with `Retry-After`. Problems say whether retrying the same request may succeed (`retryable`). Every error is RFC 9457 \
`application/problem+json` with a stable machine `code`. Every response carries `X-Request-Id`.",
        license(name = "Proprietary", identifier = "LicenseRef-Proprietary"),
    ),
    // Event data that no operation returns directly: named so that SDKs can decode
    // `Event.data` by the event's type.
    components(schemas(
        Problem,
        FieldError,
        ErrorCode,
        OAuthError,
        OAuthErrorCode,
        crate::notifications::model::UsageThresholdReached,
        crate::notifications::model::ServiceEnding,
        crate::notifications::model::ServiceEnded,
        crate::notifications::model::WalletLow,
        crate::activation::profile::ProfileStateChange,
        crate::subscriptions::model::SubscriptionRenewal,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "OAuth2 client credentials: exchange a client id and secret for a short-lived bearer token."),
        (name = "catalog", description = "The plans on sale and device eSIM compatibility (scope `catalog:read`)."),
        (name = "cards", description = "Your cards, their terms and balances (scope `cards:read`)."),
        (name = "orders", description = "Buy a plan for a card, exactly once (scopes `orders:read`, `orders:write`)."),
        (name = "activation", description = "Install or deliver a paid renewal and confirm it took effect, with the new validity."),
        (name = "events", description = "What happened to your orders, activations, cards and wallets, as a feed and as signed webhooks, and when you are told (scope `webhooks`)."),
        (name = "wallet", description = "Your prepaid wallet and its ledger (scope `wallet:read`)."),
        (name = "payments", description = "Payment providers' signed webhooks that settle external payments."),
        (name = "sandbox", description = "The sandbox payment provider, served only when it is enabled (development, `--demo`)."),
        (name = "network", description = "Calls from the mobile network (scope `network`): usage records and eSIM profile events."),
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

/// Operations that answer from memory alone: no database, so no `500`/`503` of theirs.
const WITHOUT_DATABASE: &[&str] = &["get_liveness", "get_metrics", "get_jwks"];

/// Headers whose unreadable value is ignored rather than refused (a stale or garbled
/// `If-None-Match` only means the full answer is sent).
const LENIENT_HEADERS: &[Option<&str>] = &[Some("If-None-Match")];

/// Operations that read their body themselves, with rules of their own: the token
/// endpoint answers RFC 6749 errors (`400`) for any unreadable body, and the payment
/// webhook takes whatever bytes the provider signed.
const OWN_BODY_RULES: &[&str] = &["issue_token", "receive_payment_webhook"];

/// OpenAPI links: what a created resource's answer lets a client call next, with the
/// path parameter taken from that answer (generators and stateful fuzzers follow them).
const LINKS: &[(&str, &str, &str, &[&str])] = &[
    (
        "create_order",
        "201",
        "$response.body#/id",
        &[
            "get_order",
            "cancel_order",
            "list_order_refunds",
            "get_activation",
            "get_activation_qr_png",
            "get_activation_qr_svg",
            "confirm_activation",
            "fail_activation",
            "sandbox_payment_succeed",
            "sandbox_payment_fail",
        ],
    ),
    (
        "create_partner",
        "201",
        "$response.body#/partner_id",
        &[
            "get_partner",
            "suspend_partner",
            "resume_partner",
            "list_partner_credentials",
            "create_partner_credential",
            "set_partner_rate_limit",
            "clear_partner_rate_limit",
            "credit_wallet",
        ],
    ),
    (
        "create_plan",
        "201",
        "$response.body#/id",
        &["get_plan", "update_plan", "retire_plan"],
    ),
];

/// Adds `LINKS` to the operations' answers (only to operations the document has).
fn add_links(doc: &mut Value) {
    let mut ids = std::collections::HashSet::new();
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|i| i.values()) {
            if let Some(id) = operation["operationId"].as_str() {
                ids.insert(id.to_owned());
            }
        }
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for (source, status, value, targets) in LINKS {
                if *source != id {
                    continue;
                }
                let links: serde_json::Map<String, Value> = targets
                    .iter()
                    .filter(|target| ids.contains(**target))
                    .map(|target| {
                        (
                            (*target).to_owned(),
                            json!({"operationId": target, "parameters": {"id": value}}),
                        )
                    })
                    .collect();
                operation["responses"][*status]["links"] = Value::Object(links);
            }
        }
    }
}

/// Completes the gathered document, as JSON: every answer the plumbing can give is
/// declared on every operation it can reach (written once here rather than on every
/// handler), HTTP bearer requirements carry no scopes (only OAuth2 ones do), and the
/// document names its server and contact.
pub fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|e| json!({"error": e.to_string()}));
    doc["servers"] = json!([{
        "url": "/",
        "description": "The host serving this document (for example `https://api.simrenew.example`)."
    }]);
    doc["info"]["contact"] = json!({
        "name": "simrenew API support",
        "email": "api@simrenew.dev",
        "url": "https://simrenew.dev/support"
    });
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    finish_operation(operation);
                }
            }
        }
    }
    add_links(&mut doc);
    // The scopes a token request may name, from the one list of scopes.
    let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    doc["components"]["schemas"]["TokenRequest"]["properties"]["scope"]["pattern"] =
        json!(format!("^[ ,]*(({})([ ,]+|$))*$", names.join("|")));
    doc
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn with_headers(mut response: Value, headers: Value) -> Value {
    if let (Some(target), Some(headers)) = (
        response
            .as_object_mut()
            .map(|r| r.entry("headers").or_insert_with(|| json!({}))),
        headers.as_object(),
    ) {
        for (name, header) in headers {
            target[name.as_str()] = header.clone();
        }
    }
    response
}

fn retry_after(required: bool) -> Value {
    json!({"Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": required,
        "schema": {"type": "integer", "minimum": 1}
    }})
}

/// The IETF draft's headers (draft-ietf-httpapi-ratelimit-headers), on every answer to
/// an authenticated partner.
fn rate_limit_headers(required: bool) -> Value {
    json!({
        "RateLimit-Policy": {
            "description": "The partner's quota on this instance: `\"partner\";q=<burst>;w=<seconds to refill>`.",
            "required": required,
            "schema": {"type": "string", "pattern": "^\"partner\";q=[0-9]+;w=[0-9]+$"},
            "example": "\"partner\";q=40;w=2"
        },
        "RateLimit": {
            "description": "What is left of it: `\"partner\";r=<requests left now>;t=<seconds until full>`.",
            "required": required,
            "schema": {"type": "string", "pattern": "^\"partner\";r=[0-9]+;t=[0-9]+$"},
            "example": "\"partner\";r=39;t=1"
        }
    })
}

fn finish_operation(operation: &mut Value) {
    let id = operation["operationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    describe_bare_responses(operation);
    name_optional_request_body(operation);
    let scopes = operation_scopes(operation);
    let protected = !scopes.is_empty();
    if protected {
        // HTTP schemes have no scopes (OpenAPI 3.1 §4.8.30); the OAuth2 requirement
        // beside it names them.
        if let Some(requirements) = operation["security"].as_array_mut() {
            for requirement in requirements {
                if let Some(bearer) = requirement.get_mut("bearer") {
                    *bearer = json!([]);
                }
            }
        }
    }
    if operation.get("description").is_none() {
        let summary = operation["summary"].as_str().unwrap_or_default().to_owned();
        let who = if protected {
            format!(
                "Needs an access token with the scope {}.",
                scopes.join(" or ")
            )
        } else {
            "Needs no access token.".to_owned()
        };
        operation["description"] = json!(format!("{summary}\n\n{who}"));
    }

    let parameters_in = |place: &str| {
        operation["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["in"] == place && !LENIENT_HEADERS.contains(&p["name"].as_str()))
        })
    };
    let has_query = parameters_in("query");
    let has_header = parameters_in("header");
    let has_body = operation.get("requestBody").is_some();
    let own_body_rules = OWN_BODY_RULES.contains(&id.as_str());
    let uses_database = !WITHOUT_DATABASE.contains(&id.as_str());
    // Readiness turns every failure into its documented 503.
    let may_fail_internally = uses_database && id != "get_readiness";

    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    if let Some(limited) = responses.get_mut("429") {
        // Every 429 says when to come back.
        *limited = with_headers(limited.take(), retry_after(true));
    }
    if protected {
        // What the handler declared is answered after the quota was counted.
        for response in responses.values_mut() {
            *response = with_headers(response.take(), rate_limit_headers(false));
        }
    }
    let mut add = |status: &str, response: Value| {
        responses.entry(status).or_insert(response);
    };
    if has_query || has_header || (has_body && !own_body_rules) {
        add(
            "400",
            problem("The request is malformed: a query string, header or JSON body that cannot be read as this operation's input (`invalid_request`)."),
        );
    }
    if has_query {
        add(
            "422",
            problem("A query parameter breaks a rule its schema states (`validation_failed`, listing each in `errors`)."),
        );
    }
    if has_body {
        add(
            "408",
            problem("The body did not arrive within the body read deadline (`request_timeout`); the connection is closed."),
        );
    }
    if has_body && id != "issue_token" {
        add(
            "413",
            problem("The body is larger than this operation takes: 64 KiB, or 2 MiB for a usage batch (`payload_too_large`)."),
        );
    }
    if has_body && !own_body_rules {
        add(
            "415",
            problem("The body was not sent as `Content-Type: application/json` (`unsupported_media_type`)."),
        );
    }
    if protected {
        add(
            "401",
            problem("Missing, invalid, expired or revoked access token (`unauthorized`, with `WWW-Authenticate: Bearer`)."),
        );
        add(
            "403",
            with_headers(
                problem("The token lacks the scope this operation requires (`forbidden`)."),
                rate_limit_headers(false),
            ),
        );
        add(
            "429",
            with_headers(
                with_headers(
                    problem("The partner's request quota on this instance is spent (`rate_limited`, retryable); retry after `Retry-After` seconds."),
                    retry_after(true),
                ),
                rate_limit_headers(true),
            ),
        );
    }
    if may_fail_internally {
        add(
            "500",
            problem("An internal error (`internal_error`); `request_id` identifies it in the service's logs."),
        );
    }
    if uses_database {
        add(
            "503",
            with_headers(
                problem("The database is unreachable or busy (`service_unavailable`, retryable)."),
                retry_after(false),
            ),
        );
    }
}

/// The scopes an operation's OAuth2 requirement names; empty for public operations.
fn operation_scopes(operation: &Value) -> Vec<String> {
    operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|requirement| requirement["oauth2"].as_array())
        .flatten()
        .filter_map(|scope| scope.as_str().map(|s| format!("`{s}`")))
        .collect()
}

/// Generators require a description on every response; where a handler gave none,
/// the standard reason phrase stands in.
fn describe_bare_responses(operation: &mut Value) {
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let bare = response["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty());
        if bare && response.get("$ref").is_none() {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Response");
            response["description"] = json!(reason);
        }
    }
}

/// utoipa writes an optional body (`Option<Json<T>>`) as `oneOf: [T, null]`; generators
/// want the named schema, with the body marked not required.
fn name_optional_request_body(operation: &mut Value) {
    let Some(body) = operation.get_mut("requestBody") else {
        return;
    };
    let mut unwrapped = false;
    if let Some(contents) = body["content"].as_object_mut() {
        for content in contents.values_mut() {
            let Some(one_of) = content["schema"]["oneOf"].as_array() else {
                continue;
            };
            let named: Vec<_> = one_of.iter().filter(|s| s.get("$ref").is_some()).collect();
            if named.len() == 1 && one_of.len() == 2 {
                content["schema"] = named[0].clone();
                unwrapped = true;
            }
        }
    }
    if unwrapped {
        body["required"] = json!(false);
    }
}

/// The document a server with this configuration serves: without a sandbox's
/// operations when that sandbox is off (they answer `404` there).
pub fn served(mut doc: Value, sandboxes: Sandboxes) -> Value {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, item| {
            let sandboxed = item
                .as_object()
                .into_iter()
                .flat_map(|ops| ops.values())
                .any(|op| {
                    op["tags"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("sandbox")))
                });
            match (sandboxed, path.starts_with(SMS_SANDBOX_PATH)) {
                (false, _) => true,
                (true, true) => sandboxes.sms,
                (true, false) => sandboxes.payments,
            }
        });
    }
    if !sandboxes.payments {
        add_links(&mut doc);
    }
    doc
}

/// Which sandboxes a deployment runs: the payment provider's, the SMS provider's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sandboxes {
    pub payments: bool,
    pub sms: bool,
}

/// The SMS sandbox's outbox (served when an SMS route goes to the sandbox).
pub const SMS_SANDBOX_PATH: &str = "/v1/sandbox/sms";

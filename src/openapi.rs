//! The OpenAPI document partners generate clients from: the handlers' annotations, completed in
//! one place ([`document`]) with the answers every operation of a kind can give (401 and 503 for
//! protected operations, 400/413/415/422 for JSON bodies, 403 for a role…), so that each
//! handler's annotation lists only what is particular to it. `make contract` judges the result
//! with outside tools (validator, client generator, schemathesis); `tests/api/contract.rs` keeps
//! it in step with the routes the app registers.

use serde_json::{Map, Value, json};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};

use crate::error::PROBLEM_CONTENT_TYPE;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Currency Conversion Service",
        description = "Exchange rates from real providers, conversions with a holding period, history and task monitoring. Amounts and rates are decimal strings; timestamps are RFC 3339 UTC; errors are RFC 9457 problem+json.",
    ),
    paths(
        crate::health::live,
        crate::health::ready,
        crate::health::metrics,
        crate::auth::routes::token,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::register,
        crate::auth::routes::me,
        crate::auth::routes::list_partners,
        crate::auth::routes::create_partner,
        crate::auth::routes::get_partner,
        crate::auth::routes::update_partner,
        crate::auth::routes::reset_password,
        crate::access::routes::get_limits,
        crate::access::routes::put_limits,
        crate::access::routes::get_usage,
        crate::auth::routes::create_credential,
        crate::auth::routes::list_credentials,
        crate::auth::routes::revoke_credential,
        crate::currencies::routes::list,
        crate::currencies::routes::get,
        crate::currencies::routes::create,
        crate::currencies::routes::update,
        crate::currencies::routes::delete,
        crate::rates::routes::latest,
        crate::rates::routes::at,
        crate::rates::routes::series_handler,
        crate::rates::routes::convert,
        crate::conversions::routes::create,
        crate::conversions::routes::get,
        crate::conversions::routes::cancel,
        crate::conversions::routes::create_batch,
        crate::quotes::routes::create,
        crate::quotes::routes::get,
        crate::markups::routes::get,
        crate::markups::routes::put,
        crate::markups::routes::changes,
        crate::history::routes::markup_report,
        crate::webhooks::routes::create,
        crate::webhooks::routes::list,
        crate::webhooks::routes::delete,
        crate::webhooks::routes::rotate_secret,
        crate::webhooks::routes::test,
        crate::webhooks::routes::deliveries,
        crate::webhooks::routes::retry,
        crate::history::routes::list,
        crate::history::routes::summary,
        crate::tasks::routes::list_runs,
        crate::tasks::routes::get_run,
        crate::tasks::routes::run_now,
        crate::tasks::routes::retry_run,
        crate::tasks::routes::stats,
        crate::tasks::routes::schedules,
    ),
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        Decimal,
        crate::money::PositiveDecimal,
        crate::idempotency::IdempotencyKey,
        crate::currencies::CurrencyCodes,
        crate::rates::routes::InstantOrDate,
        crate::rates::routes::RatesPricing,
        crate::history::routes::MarkupGroupBy,
        crate::history::routes::Format,
        crate::history::routes::GroupBy,
        crate::auth::credentials::ClientToken,
        // The `data` of `rates.degraded` and `rates.recovered` webhook deliveries (no route
        // answers with it).
        crate::rates::provenance::RatesAlert,
        crate::webhooks::EventType,
    )),
    // A server-relative URL, so that generated clients and schemathesis call the host the
    // document was fetched from.
    servers((url = "/")),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Tokens, refresh, logout, registration"),
        (name = "partners", description = "Partner accounts (admin)"),
        (name = "usage", description = "A partner's usage per day: requests, 429s, conversions and volume"),
        (name = "credentials", description = "Client credentials for partners' machines (OAuth 2.0 client_credentials)"),
        (name = "currencies", description = "Supported currencies (ISO 4217 and explicit others)"),
        (name = "rates", description = "Exchange rates: latest, as of an instant, series, conversion quotes"),
        (name = "conversions", description = "Convert amounts; temporary during the holding period, then permanent"),
        (name = "quotes", description = "Rate locks: a quoted rate held for a while, at a spread that is shown"),
        (name = "webhooks", description = "Signed event deliveries (Standard Webhooks) to a partner's endpoints"),
        (name = "history", description = "A partner's own conversions: list, CSV export, summary"),
        (name = "tasks", description = "Background task runs, queue and schedules (admin)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/v1/auth/token` with email and password (JSON).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_CREDENTIALS_SCHEME,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/api/v1/auth/token",
                    Scopes::new(),
                ))],
                "A partner's machine: `grant_type=client_credentials` as a form to `POST /api/v1/auth/token`, the client authenticated with HTTP Basic or `client_id`/`client_secret` in the form (`POST /api/v1/credentials` creates them). The access token is sent as `Authorization: Bearer`.",
            )),
        );
    }
}

/// The security scheme of tokens issued on client credentials: accepted wherever a partner's
/// token is.
const CLIENT_CREDENTIALS_SCHEME: &str = "clientCredentials";

/// A decimal number as a string (amounts and rates never travel as JSON numbers, which clients
/// would read as binary floating point). Documentation only: the values are `BigDecimal`s.
pub struct Decimal;

impl utoipa::PartialSchema for Decimal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
            .description(Some(
                "Decimal number as a string, e.g. `100.00` or `0.0205`",
            ))
            .examples([json!("100.00")])
            .into()
    }
}

impl utoipa::ToSchema for Decimal {}

/// The document as served at `/api-docs/openapi.json`.
pub fn document() -> Value {
    // Built from our own annotations, never from input: a failure here is a programming error
    // that every test run would show at once.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if HTTP_METHODS.contains(&method.as_str()) {
                    complete_operation(path, operation);
                }
            }
        }
    }
    doc
}

/// Operations whose JSON body may be left out (`extract::OptionalJson`); sent, it must fit.
const OPTIONAL_BODIES: [&str; 2] = ["logout", "runTask"];

/// The methods an OpenAPI path item may hold (its other keys are not operations).
pub const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Adds the responses an operation gives because of what it is, documents problem bodies as
/// `application/problem+json`, and states the role a protected operation needs.
fn complete_operation(path: &str, operation: &mut Value) {
    let roles: Vec<String> = operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|requirement| requirement.get("bearer"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|role| role.as_str().map(str::to_owned))
        .collect();
    let protected = operation.get("security").is_some();
    // A partner's operations take a token from client credentials as well as from a login.
    let partner_operation = protected && (roles.is_empty() || roles.iter().any(|r| r == "partner"));
    if partner_operation
        && let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut)
        && !security
            .iter()
            .any(|r| r.get(CLIENT_CREDENTIALS_SCHEME).is_some())
    {
        security.push(json!({ CLIENT_CREDENTIALS_SCHEME: [] }));
    }
    let has_body = operation.get("requestBody").is_some();
    // Bodies a handler takes as `extract::OptionalJson`: the request may have none at all.
    if operation
        .get("operationId")
        .and_then(Value::as_str)
        .is_some_and(|id| OPTIONAL_BODIES.contains(&id))
        && let Some(body) = operation
            .get_mut("requestBody")
            .and_then(Value::as_object_mut)
    {
        body.insert("required".into(), false.into());
    }
    let params: Vec<(String, String)> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("in")?.as_str()?.to_owned(),
                p.get("name")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    if !roles.is_empty() {
        let needs = format!("\n\nRequires the `{}` role.", roles.join("` or `"));
        let description = operation
            .entry("description")
            .or_insert_with(|| Value::String(String::new()));
        if let Some(text) = description.as_str()
            && !text.contains("Requires the")
        {
            *description = Value::String(format!("{text}{needs}").trim_start().to_owned());
        }
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    let mut add = |status: &str, description: &str| {
        let response = responses
            .entry(status.to_owned())
            .or_insert_with(|| json!({}));
        // An annotation that lists the status without saying when gets the common wording.
        if response.get("description").is_none()
            && let Some(response) = response.as_object_mut()
        {
            response.insert("description".into(), description.into());
        }
    };
    if has_body {
        add("400", "The body is not well-formed JSON.");
        add(
            "413",
            "The body is larger than the server accepts (`server.body_limit_bytes`).",
        );
        add("415", "The body is not `Content-Type: application/json`.");
        add(
            "422",
            "The body is not a JSON object of the documented shape, or a field is invalid; `errors` names each field.",
        );
    }
    if params.iter().any(|(place, _)| place == "query") {
        add(
            "422",
            "A query parameter is invalid; `errors` names each one.",
        );
    }
    if params.iter().any(|(place, _)| place == "path") {
        add("404", "No such resource.");
    }
    if protected {
        add(
            "401",
            "No bearer token, or one that is invalid, expired or revoked.",
        );
        if !roles.is_empty() {
            add("403", "The caller's role may not do this.");
        }
    }
    if partner_operation {
        add(
            "429",
            "The partner's requests per minute are used up (or, on a login, too many failures); retry after `Retry-After` seconds.",
        );
    }
    if path.starts_with("/api/") || path == "/health/ready" {
        add(
            "503",
            "A dependency (PostgreSQL or Redis) is unavailable; retry after `Retry-After` seconds.",
        );
    }
    if partner_operation {
        for response in responses.values_mut() {
            let Some(headers) = response
                .as_object_mut()
                .map(|r| r.entry("headers").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            headers.insert(
                "RateLimit-Policy".into(),
                json!({
                    "description": "The partner's request limit (draft-ietf-httpapi-ratelimit-headers): `\"default\";q=<requests>;w=60`, requests per 60 seconds across every instance.",
                    "schema": { "type": "string" },
                    "example": "\"default\";q=600;w=60",
                }),
            );
            headers.insert(
                "RateLimit".into(),
                json!({
                    "description": "What is left of it: `\"default\";r=<remaining>;t=<seconds until the whole budget is back>`.",
                    "schema": { "type": "string" },
                    "example": "\"default\";r=599;t=1",
                }),
            );
        }
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        if !response.contains_key("description") {
            response.insert("description".into(), default_description(status).into());
        }
        // Every error is RFC 9457 problem details, whatever the annotation said; the token
        // endpoint's grant errors are OAuth's own JSON (RFC 6749 §5.2) beside them.
        let oauth = response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .filter(|c| {
                c.pointer("/schema/$ref").and_then(Value::as_str)
                    == Some("#/components/schemas/OAuthError")
            })
            .cloned();
        response.remove("content");
        let mut content = json!({ PROBLEM_CONTENT_TYPE: { "schema": { "$ref": "#/components/schemas/Problem" } } });
        if let (Some(oauth), Some(content)) = (oauth, content.as_object_mut()) {
            content.insert("application/json".into(), oauth);
        }
        response.insert("content".into(), content);
        let headers = response
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(headers) = headers.as_object_mut() else {
            continue;
        };
        match status.as_str() {
            "401" => {
                headers.entry("WWW-Authenticate").or_insert_with(|| {
                    json!({
                        "description": "`Bearer`: the scheme to authenticate with.",
                        "required": true,
                        "schema": { "type": "string" },
                    })
                });
            }
            "429" | "503" => {
                headers.entry("Retry-After").or_insert_with(|| {
                    json!({
                        "description": "Seconds to wait before retrying.",
                        "schema": { "type": "integer", "minimum": 0 },
                    })
                });
            }
            "405" => {
                headers.entry("Allow").or_insert_with(|| {
                    json!({
                        "description": "The methods the resource supports.",
                        "required": true,
                        "schema": { "type": "string" },
                    })
                });
            }
            _ => {}
        }
        if headers.is_empty() {
            response.remove("headers");
        }
    }
}

/// What an error status means in this API, for annotations that list it without saying.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "The request is malformed.",
        "401" => "No bearer token, or one that is invalid, expired or revoked.",
        "403" => "The caller may not do this.",
        "404" => "No such resource.",
        "409" => "The request conflicts with the resource's current state.",
        "413" => "The body is larger than the server accepts.",
        "415" => "The body is not `Content-Type: application/json`.",
        "422" => "The request is well-formed but invalid; `errors` names each field.",
        "429" => "Too many attempts; retry after `Retry-After` seconds.",
        "503" => "A dependency is unavailable; retry after `Retry-After` seconds.",
        _ => "The request failed; the problem details say why.",
    }
}

//! The one place where failures become HTTP responses: RFC 9457 `application/problem+json`.
//!
//! Policy: every module has its own error enum and maps it to an [`ApiError`] with a
//! `From<ModuleError> for ApiError` beside that enum, so this file imports no capability and a
//! reader finds a module's failures and their HTTP answers in one place. A problem
//! `type` is a stable identifier clients may branch on (`/problems/<slug>`). Anything unexpected
//! becomes a 500 whose body says nothing internal; its whole cause chain goes to the log with the
//! request id. Unknown errors are never mapped to 4xx. An unavailable dependency (PostgreSQL
//! unreachable, its pool exhausted) is not a fault of ours or the client's: wherever it surfaces,
//! the client gets `503 /problems/service-unavailable` with `Retry-After`, and the log gets one
//! line per burst of such failures instead of one cause chain per request.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// What a 503 tells clients to wait before retrying: long enough for a restarted or failed-over
/// PostgreSQL to accept connections, short enough not to stretch a blip.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// How long one burst of unavailability failures is logged as a single line.
const UNAVAILABLE_LOG_WINDOW: Duration = Duration::from_secs(30);

/// Rate-limits a log line: the first failure of a window is logged, the rest only counted.
#[derive(Debug, Default)]
pub struct BurstLog {
    /// Start of the current window and failures suppressed in it.
    window: Mutex<Option<(Instant, u64)>>,
}

impl BurstLog {
    pub const fn new() -> Self {
        Self {
            window: Mutex::new(None),
        }
    }

    /// Records one failure at `now`. `Some(n)` means "log this one", `n` being how many were
    /// suppressed in the window it closes; `None` means it belongs to a burst already logged.
    pub fn record(&self, now: Instant, window: Duration) -> Option<u64> {
        let mut current = self.window.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_mut() {
            Some((start, suppressed)) if now.duration_since(*start) < window => {
                *suppressed += 1;
                None
            }
            _ => {
                let suppressed = current.map_or(0, |(_, n)| n);
                *current = Some((now, 0));
                Some(suppressed)
            }
        }
    }
}

/// One log line per burst of "PostgreSQL unavailable" answers, process-wide: an outage seen by
/// every request would otherwise write a cause chain per request.
static UNAVAILABLE_LOG: BurstLog = BurstLog::new();

/// Whether the cause chain of `e` holds a dependency being unavailable rather than a fault.
fn dependency_unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(crate::db::is_unavailable)
}

/// One invalid field of a request, reported inside a validation problem.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON field (or query parameter) name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// For one item of a batch: the problem type the same fault gets in a request of its own
    /// (`/problems/currency-disabled`, `/problems/stale-rate`…), so that a client handles both
    /// alike.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            problem_type: None,
        }
    }

    /// The same, naming the problem type of the fault.
    pub fn with_type(mut self, problem_type: impl Into<String>) -> Self {
        self.problem_type = Some(problem_type.into());
        self
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/validation-failed`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Field errors of a validation problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The failures the HTTP layer knows how to answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A 404 with its own problem type (e.g. `/problems/no-rates`).
    #[error("not found ({slug}): {detail}")]
    NotFoundAs { slug: &'static str, detail: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A 409 with its own problem type (e.g. `/problems/conversion-finalizing`).
    #[error("conflict ({slug}): {detail}")]
    ConflictAs { slug: &'static str, detail: String },
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("request header fields too large: {0}")]
    RequestHeaderTooLarge(String),
    #[error("URI too long: {0}")]
    UriTooLong(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// A request that is well-formed but cannot be carried out (stale rate, reused key…).
    #[error("unprocessable ({slug}): {detail}")]
    Unprocessable { slug: &'static str, detail: String },
    /// Like [`ApiError::Unprocessable`], because of what one field names (a well-formed currency
    /// that is not offered): the problem lists that field in `errors`, as a validation does.
    #[error("unprocessable ({slug}): {field}: {message}")]
    UnprocessableField {
        slug: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("too many requests")]
    TooManyRequests {
        retry_after_secs: u64,
        /// What was limited and how to get out, for the problem's `detail`.
        detail: String,
    },
    /// A 429 with its own problem type (e.g. `/problems/too-many-open-locks`).
    #[error("too many ({slug}): {detail}")]
    TooManyRequestsAs {
        slug: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A 503 with its own problem type and `Retry-After` (e.g. `/problems/rate-unavailable`).
    #[error("unavailable ({slug}): {detail}")]
    UnavailableAs {
        slug: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation { .. } => ("validation-failed", "Validation failed"),
            ApiError::BadRequest(_) => ("malformed-request", "Malformed request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::NotFoundAs { slug, .. } => (slug, "Not found"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::ConflictAs { slug, .. } => (slug, "Conflict"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::RequestHeaderTooLarge(_) => (
                "request-header-too-large",
                "Request header fields too large",
            ),
            ApiError::UriTooLong(_) => ("uri-too-long", "URI too long"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::NotAcceptable(_) => ("not-acceptable", "Not acceptable"),
            ApiError::Unprocessable { slug, .. } | ApiError::UnprocessableField { slug, .. } => {
                (slug, "Request cannot be carried out")
            }
            ApiError::TooManyRequests { .. } => ("too-many-requests", "Too many requests"),
            ApiError::TooManyRequestsAs { slug, .. } => (slug, "Too many requests"),
            ApiError::Unavailable(_) => ("service-unavailable", "Service unavailable"),
            ApiError::UnavailableAs { slug, .. } => (slug, "Service unavailable"),
            ApiError::Internal(e) if dependency_unavailable(e) => {
                ("service-unavailable", "Service unavailable")
            }
            ApiError::Internal(_) => ("internal-error", "Internal server error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            ApiError::Validation { detail, .. } => detail.clone(),
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::RequestHeaderTooLarge(d)
            | ApiError::UriTooLong(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::NotAcceptable(d)
            | ApiError::Unavailable(d)
            | ApiError::UnavailableAs { detail: d, .. } => d.clone(),
            ApiError::Unprocessable { detail, .. }
            | ApiError::TooManyRequestsAs { detail, .. }
            | ApiError::NotFoundAs { detail, .. }
            | ApiError::ConflictAs { detail, .. } => detail.clone(),
            ApiError::UnprocessableField { field, message, .. } => format!("{field}: {message}"),
            ApiError::MethodNotAllowed => "this resource does not support that method".into(),
            ApiError::TooManyRequests { detail, .. } => detail.clone(),
            ApiError::Internal(e) if dependency_unavailable(e) => {
                "the database is unavailable; retry later".into()
            }
            ApiError::Internal(_) => {
                "an unexpected error occurred; the request id identifies it in the logs".into()
            }
        };
        let errors = match self {
            ApiError::Validation { errors, .. } => errors.clone(),
            ApiError::UnprocessableField { field, message, .. } => {
                vec![FieldError::new(*field, message.clone())]
            }
            _ => Vec::new(),
        };
        Problem {
            problem_type: format!("/problems/{slug}"),
            title: title.into(),
            status: self.status_code().as_u16(),
            detail,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NotFoundAs { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::ConflictAs { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestHeaderTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Unprocessable { .. } | ApiError::UnprocessableField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests { .. } | ApiError::TooManyRequestsAs { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) | ApiError::UnavailableAs { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(e) if dependency_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(e) if dependency_unavailable(e) => {
                if let Some(suppressed) =
                    UNAVAILABLE_LOG.record(Instant::now(), UNAVAILABLE_LOG_WINDOW)
                {
                    tracing::error!(
                        error = format!("{e:#}"),
                        suppressed,
                        "PostgreSQL is unavailable; answering 503 (logged once per burst, suppressed counts the previous burst)"
                    );
                }
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed with an internal error");
            }
            _ => {}
        }
        let mut builder = HttpResponse::build(self.status_code());
        builder.insert_header((header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE));
        match self {
            ApiError::Unauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            }
            | ApiError::TooManyRequestsAs {
                retry_after_secs, ..
            }
            | ApiError::UnavailableAs {
                retry_after_secs, ..
            } => {
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ if self.status_code() == StatusCode::SERVICE_UNAVAILABLE => {
                builder.insert_header((
                    header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
                ));
            }
            _ => {}
        }
        builder.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

/// Turns actix's own extractor failures (bad JSON, wrong content type, oversized body, bad query
/// or path) into problem+json instead of actix's plain-text pages.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { length, limit } => ApiError::PayloadTooLarge(format!(
            "body of {length} bytes exceeds the limit of {limit}"
        )),
        J::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("body exceeds the limit of {limit} bytes"))
        }
        J::ContentType => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        J::Deserialize(e) if e.is_data() => {
            let (field, message) = json_field(e);
            ApiError::Validation {
                detail: format!("{field}: {message}"),
                errors: vec![FieldError::new(field, message)],
            }
        }
        J::Deserialize(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
        other => ApiError::BadRequest(format!("unreadable body: {other}")),
    };
    api.into()
}

/// The field a JSON data error is about, when the error says: serde names a missing or
/// unknown field in backquotes, and our field deserialisers (e.g. `money::amount_as_text`)
/// start their message with the field's name. Otherwise the whole body.
fn json_field(e: &serde_json::Error) -> (String, String) {
    let text = e.to_string();
    // serde_json appends the position; the field name says more to a client.
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let is_name = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if let Some((name, message)) = text.split_once(": ")
        && is_name(name)
    {
        return (name.to_owned(), message.to_owned());
    }
    for (prefix, message) in [
        ("missing field `", "is required"),
        ("unknown field `", "is not a field of this request"),
    ] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Some((name, _)) = rest.split_once('`')
        {
            return (name.to_owned(), message.to_owned());
        }
    }
    (
        "body".to_owned(),
        format!("does not have the expected shape: {text}"),
    )
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    req: &HttpRequest,
) -> actix_web::Error {
    // serde_urlencoded's errors name neither the parameter nor the format ("input contains
    // invalid characters"); the query string does, so look for the typed parameter whose value
    // does not parse.
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let culprit = pairs.iter().find_map(|(k, v)| {
        QUERY_FORMATS
            .iter()
            .find(|(name, valid, _)| name == k && !valid(v))
            .map(|(name, _, format)| (*name, format!("expected {format}, got {v:?}")))
    });
    match culprit {
        Some((field, message)) => ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        },
        None => ApiError::Validation {
            detail: format!("invalid query string: {err}; see each parameter's format at /docs"),
            errors: vec![FieldError::new("query", err.to_string())],
        },
    }
    .into()
}

/// A parameter's name, a check of its value, and the format to ask for.
type QueryFormat = (&'static str, fn(&str) -> bool, &'static str);

/// Query parameters that are typed (parsed by the extractor rather than by the handler), with
/// a check and the format to ask for.
const QUERY_FORMATS: [QueryFormat; 8] = [
    (
        "timestamp",
        is_instant,
        "an RFC 3339 instant such as 2026-10-30T15:00:00Z",
    ),
    (
        "at",
        is_instant,
        "an RFC 3339 instant such as 2026-10-30T15:00:00Z",
    ),
    ("date", is_date, "a date such as 2026-10-30"),
    (
        "from",
        is_instant,
        "an RFC 3339 instant such as 2026-10-30T15:00:00Z",
    ),
    (
        "to",
        is_instant,
        "an RFC 3339 instant such as 2026-10-30T15:00:00Z",
    ),
    ("partner_id", is_uuid, "a partner id (UUID)"),
    ("limit", is_count, "a whole number such as 50"),
    ("include_inactive", is_bool, "true or false"),
];

/// The format to ask for when the standard parser of query parameter `field` refuses its value
/// (see [`crate::extract::Query`]).
pub fn query_format(field: &str) -> Option<&'static str> {
    QUERY_FORMATS
        .iter()
        .find(|(name, _, _)| *name == field)
        .map(|(_, _, format)| *format)
}

fn is_instant(v: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(v).is_ok()
}

fn is_date(v: &str) -> bool {
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

fn is_uuid(v: &str) -> bool {
    uuid::Uuid::parse_str(v).is_ok()
}

fn is_count(v: &str) -> bool {
    v.parse::<u32>().is_ok()
}

fn is_bool(v: &str) -> bool {
    matches!(v, "true" | "false")
}

pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("no such resource: {err}")).into()
}

/// Default service: unknown routes.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Marks an error response whose body a standard dictates (the OAuth token endpoint's
/// RFC 6749 §5.2 errors), so [`ensure_problem_json`] leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct StandardErrorBody;

/// Rewrites any error response that is not already problem+json (actix's own 404/405/413 pages,
/// middleware failures) into problem+json, so clients always get one format.
pub fn ensure_problem_json<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>>
where
    B: actix_web::body::MessageBody + 'static,
{
    let is_problem = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    // HTML error pages are rendered on purpose by the monitor for people, not API clients.
    let is_page = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let is_standard = res
        .response()
        .extensions()
        .get::<StandardErrorBody>()
        .is_some();
    if is_problem
        || is_page
        || is_standard
        || !res.status().is_client_error() && !res.status().is_server_error()
    {
        return Ok(actix_web::middleware::ErrorHandlerResponse::Response(
            res.map_into_left_body(),
        ));
    }
    let status = res.status();
    let api = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge("request body too large".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("unsupported content type".into())
        }
        StatusCode::UNAUTHORIZED => {
            ApiError::Unauthorized("a valid bearer token is required".into())
        }
        s if s.is_server_error() => ApiError::Internal(anyhow::anyhow!("unhandled {s} response")),
        _ => ApiError::BadRequest(
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_ascii_lowercase(),
        ),
    };
    let mut problem = api.problem();
    problem.status = status.as_u16();
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    // Keep headers such as Allow, WWW-Authenticate, Retry-After and X-Request-Id.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    new.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    ));
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let res = actix_web::dev::ServiceResponse::new(req, new.body(body)).map_into_right_body();
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(res))
}

/// Turns unique-violation errors into a domain answer by constraint name, instead of checking
/// with a SELECT first (which races).
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_is_logged_once_and_the_next_burst_reports_the_suppressed_count() {
        let log = BurstLog::new();
        let start = Instant::now();
        let window = Duration::from_secs(30);
        assert_eq!(log.record(start, window), Some(0));
        for ms in [1, 500, 29_999] {
            assert_eq!(log.record(start + Duration::from_millis(ms), window), None);
        }
        assert_eq!(log.record(start + Duration::from_secs(30), window), Some(3));
        assert_eq!(log.record(start + Duration::from_secs(31), window), None);
    }

    #[test]
    fn a_pool_timeout_anywhere_in_the_chain_is_a_503_with_retry_after() {
        let err = ApiError::Internal(
            anyhow::Error::new(sqlx::Error::PoolTimedOut).context("listing conversions"),
        );
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.problem().problem_type, "/problems/service-unavailable");
        let res = err.error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "5");
    }

    #[test]
    fn a_query_fault_stays_a_500() {
        let err = ApiError::Internal(anyhow::Error::new(sqlx::Error::RowNotFound));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            err.error_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}

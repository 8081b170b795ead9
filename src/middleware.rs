//! Request-scoped plumbing: the request id (accepted from `X-Request-Id` or generated), the
//! tracing span that carries it into every log line, request metrics, and the security headers
//! every response carries.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use futures_util::StreamExt;
use tracing::Instrument;

use crate::error::{ApiError, FieldError};
use crate::metrics::Metrics;

/// The limit where no [`BodyLimits`] is registered (actix-web's own default).
const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served; handlers may extract it from request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a client-supplied id only if it is short and made of safe characters, so that it
/// cannot inject anything into logs or headers.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A UUIDv7 (time-ordered, so ids sort by arrival in logs) whose random bits come from the
/// thread's generator: `Uuid::now_v7` asks the kernel (`getrandom`) on every call, a system
/// call per request.
fn new_request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>())
        .into_uuid()
        .to_string()
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    match result {
        Ok(mut res) => {
            let status = res.status();
            if let Some(metrics) = metrics {
                let route = res.request().match_pattern();
                metrics.observe_request(&method, route, status.as_u16(), elapsed);
            }
            span.in_scope(|| {
                tracing::info!(
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    "request served"
                )
            });
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                res.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

/// Headers every response carries: `X-Content-Type-Options: nosniff` (a browser must not guess
/// a JSON or CSV body into HTML), and for JSON bodies `Cache-Control: no-store` unless the route
/// chose its own caching (rates with an `ETag`, say): API answers are per caller and must not
/// sit in shared or browser caches.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence == "application/json" || essence.ends_with("+json")
        });
    if is_json && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// The largest body each path accepts: `server.body_limit_bytes`, except where a route needs
/// more (a batch). Kept here, by path, because [`json_objects_only`] reads a body before routing
/// has found the route and its own `JsonConfig`: a route's larger limit would otherwise never
/// apply, the server-wide one refusing first.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    default: usize,
    routes: Vec<(&'static str, usize)>,
}

impl BodyLimits {
    /// Every path takes at most `default` bytes.
    pub fn new(default: usize) -> Self {
        Self {
            default,
            routes: Vec::new(),
        }
    }

    /// The exact path `path` takes at most `limit` bytes.
    pub fn route(mut self, path: &'static str, limit: usize) -> Self {
        self.routes.push((path, limit));
        self
    }

    /// The limit of a request to `path`.
    pub fn for_path(&self, path: &str) -> usize {
        self.routes
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(self.default, |(_, limit)| *limit)
    }
}

/// The body of `req`, refused as 413 once it is over `limit` bytes (announced or sent), so no
/// more than `limit` bytes are ever held.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the body is over {limit} bytes"));
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Every JSON body this API takes is an object. serde would otherwise fill a struct from an
/// array by position (`["USD","JPY","1.00"]` as a conversion), so anything else is refused
/// here, once, with 422 — before any handler sees it. Bodies are small (the path's
/// [`BodyLimits`]), so reading one ahead of the handler costs nothing worth avoiding.
pub async fn json_objects_only(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
    if is_json {
        let limit = req
            .app_data::<BodyLimits>()
            .map_or(DEFAULT_BODY_LIMIT, |limits| limits.for_path(req.path()));
        // The error middleware sits inside this one: answer in problem+json here.
        let body = read_body(&mut req, limit).await?;
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            return Err(ApiError::Validation {
                detail: "the JSON body must be an object".into(),
                errors: vec![FieldError::new("body", "must be a JSON object")],
            }
            .into());
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::{acceptable, new_request_id};

    #[test]
    fn generated_request_ids_are_distinct_uuid_v7() {
        let a = uuid::Uuid::parse_str(&new_request_id()).unwrap();
        let b = uuid::Uuid::parse_str(&new_request_id()).unwrap();
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
    }

    #[test]
    fn request_ids_with_unsafe_characters_are_replaced() {
        assert!(acceptable("abc-123_x.y:z"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}

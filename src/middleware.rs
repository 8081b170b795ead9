//! Request-scoped plumbing, in one middleware ([`Pipeline`]) every API request passes: the
//! request id (accepted from `X-Request-Id` or generated), the tracing span that carries it into
//! every log line, the partner's request limit and usage count (`access::middleware`), the
//! JSON-objects-only body check, request metrics, and the security headers every response
//! carries. One middleware rather than a chain of `from_fn` layers: each layer boxed a future
//! and looked its context up per request, a cost the token-check ceiling of `make bench` does
//! not pay (docs/benchmarks.md).

use std::rc::Rc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use tracing::Instrument;

use crate::access::Access;
use crate::access::middleware::{Admission, admit};
use crate::auth::Auth;
use crate::error::{ApiError, FieldError};
use crate::metrics::Metrics;

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
/// [`BodyLimits`]), so reading one ahead of the handler costs nothing worth avoiding. Requests
/// without a JSON content type are not touched.
async fn json_objects_only(req: &mut ServiceRequest, limits: &BodyLimits) -> Result<(), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
    if !is_json {
        return Ok(());
    }
    let limit = limits.for_path(req.path());
    let body = read_body(req, limit).await?;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(ApiError::Validation {
            detail: "the JSON body must be an object".into(),
            errors: vec![FieldError::new("body", "must be a JSON object")],
        });
    }
    req.set_payload(actix_web::dev::Payload::from(body));
    Ok(())
}

/// Headers every response carries: `X-Content-Type-Options: nosniff` (a browser must not guess
/// a JSON or CSV body into HTML), and for JSON bodies `Cache-Control: no-store` unless the route
/// chose its own caching (rates with an `ETag`, say): API answers are per caller and must not
/// sit in shared or browser caches.
fn security_headers(headers: &mut HeaderMap) {
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
}

/// What the pipeline serves with, built once per worker: no per-request lookup of the app's
/// data.
struct Context {
    access: Access,
    auth: Auth,
    metrics: web::Data<Metrics>,
    body_limits: BodyLimits,
}

/// The middleware every API request passes, outermost first in effect:
/// 1. the request id, kept in the request ([`RequestId`]) and echoed in `X-Request-Id`, and a
///    tracing span `request` carrying it (and the method and path) into every log line;
/// 2. the partner's request limit (`access::middleware::admit`): over it, a 429 without
///    calling the route; within it, the RateLimit fields and a usage count on the answer;
/// 3. the JSON-objects-only check of a JSON body (422 problem+json);
/// 4. the route;
/// 5. on the answer: the request's metrics and its `request served` log line, then
///    `X-Request-Id` and the security headers — on every answer, the 429 and 422 above
///    included.
#[derive(Clone)]
pub struct Pipeline {
    context: Rc<Context>,
}

impl Pipeline {
    pub fn new(
        access: Access,
        auth: Auth,
        metrics: web::Data<Metrics>,
        body_limits: BodyLimits,
    ) -> Self {
        Self {
            context: Rc::new(Context {
                access,
                auth,
                metrics,
                body_limits,
            }),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Pipeline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = PipelineService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(PipelineService {
            service: Rc::new(service),
            context: self.context.clone(),
        }))
    }
}

pub struct PipelineService<S> {
    service: Rc<S>,
    context: Rc<Context>,
}

impl<S, B> Service<ServiceRequest> for PipelineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let context = self.context.clone();
        Box::pin(serve(service, context, req))
    }
}

async fn serve<S, B>(
    service: Rc<S>,
    context: Rc<Context>,
    mut req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let request_id_header = HeaderValue::from_str(&request_id).ok();
    let method = req.method().clone();
    // Disabled (the bench's `RUST_LOG=warn`), the span is `Span::none()` and its fields are
    // never formatted.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
    );
    req.extensions_mut().insert(RequestId(request_id));
    let answered = async {
        let admitted = match admit(&req, &context.access, &context.auth).await {
            Admission::Unlimited => None,
            Admission::Admitted(admitted) => Some(admitted),
            Admission::Refused(res) => {
                return Ok(req.into_response(res).map_into_right_body());
            }
        };
        let res = match json_objects_only(&mut req, &context.body_limits).await {
            Ok(()) => service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body),
            Err(refused) => Ok(req.error_response(refused).map_into_right_body()),
        };
        if let Some(admitted) = admitted {
            match res {
                Ok(mut res) => {
                    let status = res.status().as_u16();
                    admitted.answered(&context.access, status, res.headers_mut());
                    return Ok(res);
                }
                // An error a layer inside returned rather than answered: rendered further out,
                // without these headers; the request is counted all the same.
                Err(e) => {
                    let status = e.as_response_error().status_code().as_u16();
                    admitted.answered(&context.access, status, &mut HeaderMap::new());
                    return Err(e);
                }
            }
        }
        res
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();
    let mut res = answered?;
    let status = res.status();
    context.metrics.observe_request(
        &method,
        res.request().match_pattern(),
        status.as_u16(),
        elapsed,
    );
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        )
    });
    let headers = res.headers_mut();
    if let Some(value) = request_id_header {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    security_headers(headers);
    Ok(res)
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

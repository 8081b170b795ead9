//! The request limit on every partner request: the caller is identified from its bearer token
//! (signature and expiry only: whether the token is still good is for the route's extractor,
//! and a refused token's request is counted all the same), counted by [`Access::check`], and
//! answered with the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers,
//! structured-field form): `RateLimit-Policy: "default";q=<limit>;w=60` and
//! `RateLimit: "default";r=<remaining>;t=<seconds until the whole budget is back>`. Over the
//! limit the route is not called: 429 problem+json with `Retry-After`. Every answer, 429s
//! included, is counted in the partner's usage. Admins and anonymous requests are not limited
//! here.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use uuid::Uuid;

use super::Access;
use super::usage::RequestClass;
use crate::auth::extract::VerifiedToken;
use crate::auth::{Auth, Role};
use crate::error::ApiError;
use crate::gcra::Decision;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The partner whose bearer token this request carries, if it is a partner's and verifies.
/// A token that verifies is kept in the request (see [`VerifiedToken`]) for the route's
/// extractor.
fn partner_of(req: &ServiceRequest, auth: &Auth) -> Option<Uuid> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let claims = auth.keys.verify(token, auth.clock.now()).ok()?;
    let partner = (claims.role == Role::Partner).then_some(claims.sub);
    req.extensions_mut().insert(VerifiedToken {
        token: token.to_owned(),
        claims,
    });
    partner
}

fn set_headers(headers: &mut actix_web::http::header::HeaderMap, d: &Decision) {
    let policy = format!("\"default\";q={};w=60", d.limit);
    let state = format!("\"default\";r={};t={}", d.remaining, d.reset_secs);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert(RATELIMIT, v);
    }
}

pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let access = req.app_data::<web::Data<Access>>().cloned();
    let auth = req.app_data::<web::Data<Auth>>().cloned();
    let partner = match (&access, &auth) {
        (Some(_), Some(auth)) => partner_of(&req, auth),
        _ => None,
    };
    let (Some(access), Some(partner)) = (access, partner) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let decision = access.check(partner).await;
    let class = RequestClass::of(req.method());
    if !decision.allowed {
        tracing::info!(partner_id = %partner, limit = decision.limit, "request limit reached");
        let (http, _) = req.into_parts();
        let mut res = ApiError::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
            detail: format!(
                "the limit of {} requests per minute is used up; retry after {} seconds",
                decision.limit, decision.retry_after_secs
            ),
        }
        .error_response();
        set_headers(res.headers_mut(), &decision);
        access
            .usage
            .record(partner, access.clock.now(), class, res.status().as_u16());
        return Ok(ServiceResponse::new(http, res).map_into_right_body());
    }
    // An error a middleware inside returns (a body that is not a JSON object) is rendered
    // further out, without these headers; the request was counted all the same.
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    access
        .usage
        .record(partner, access.clock.now(), class, status.as_u16());
    let mut res = res?.map_into_left_body();
    set_headers(res.headers_mut(), &decision);
    Ok(res)
}

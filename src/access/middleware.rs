//! The request limit on every partner request, a step of the request pipeline
//! (`crate::middleware::Pipeline`): [`admit`] before the route, [`Admitted::answered`] after it.
//! The caller is identified from its bearer token
//! (signature and expiry only: whether the token is still good is for the route's extractor,
//! and a refused token's request is counted all the same), counted by [`Access::check`], and
//! answered with the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers,
//! structured-field form): `RateLimit-Policy: "default";q=<limit>;w=60` and
//! `RateLimit: "default";r=<remaining>;t=<seconds until the whole budget is back>`. Over the
//! limit the route is not called: 429 problem+json with `Retry-After`. Every answer, 429s
//! included, is counted in the partner's usage. Admins and anonymous requests are not limited
//! here.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, ResponseError};
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

/// What the limiter decided about a request before its route runs.
pub enum Admission {
    /// Not a partner's request (anonymous, an admin, a token that does not verify): not limited
    /// and not counted here.
    Unlimited,
    /// A partner's request within its limit: counted in its usage once answered
    /// ([`Admitted::answered`]), with the RateLimit fields on the answer.
    Admitted(Admitted),
    /// Over the limit: the 429 to answer instead of calling the route (counted already).
    Refused(actix_web::HttpResponse),
}

/// A partner's request the limiter let through.
pub struct Admitted {
    partner: Uuid,
    class: RequestClass,
    decision: Decision,
}

impl Admitted {
    /// Counts the answer in the partner's usage and adds the RateLimit fields to it (when the
    /// request was answered by an error the caller renders itself, `headers` is that answer's).
    pub fn answered(
        &self,
        access: &Access,
        status: u16,
        headers: &mut actix_web::http::header::HeaderMap,
    ) {
        access
            .usage
            .record(self.partner, access.clock.now(), self.class, status);
        set_headers(headers, &self.decision);
    }
}

/// Identifies the partner of `req` from its bearer token and counts the request against the
/// partner's limit.
pub async fn admit(req: &ServiceRequest, access: &Access, auth: &Auth) -> Admission {
    let Some(partner) = partner_of(req, auth) else {
        return Admission::Unlimited;
    };
    let decision = access.check(partner).await;
    let class = RequestClass::of(req.method());
    if decision.allowed {
        return Admission::Admitted(Admitted {
            partner,
            class,
            decision,
        });
    }
    tracing::info!(partner_id = %partner, limit = decision.limit, "request limit reached");
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
    Admission::Refused(res)
}

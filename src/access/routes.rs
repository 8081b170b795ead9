//! HTTP routes of `access`: an admin reads and sets a partner's request limit; a partner reads
//! its usage (an admin any partner's).

use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::usage::{self, MAX_REPORT_DAYS, UsageReport};
use super::{Access, store};
use crate::auth::{AdminUser, Auth, AuthenticatedUser, PartnerId};
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Query};
use crate::settings::MAX_REQUESTS_PER_MINUTE;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/partners/{id}/limits")
            .route(web::get().to(get_limits))
            .route(web::put().to(put_limits)),
    )
    .service(web::resource("/usage").route(web::get().to(get_usage)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First UTC day (`YYYY-MM-DD`), included; default 29 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<NaiveDate>,
    /// Last UTC day, included; default today. At most 366 days after `from`.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<NaiveDate>,
    /// Admins: whose usage (required). A partner sees its own.
    pub partner_id: Option<Uuid>,
}

/// A partner's usage per UTC day: requests answered by class (read, write) and status class,
/// the 429s among them, and conversions with their volume per source currency. Requests are
/// counted as they are answered and written within about a second
/// (`usage.flush_interval_ms`); days are kept `usage.retention_days`.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", operation_id = "getUsage",
    params(UsageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The partner's usage, day by day (days without any left out)", body = UsageReport),
        (status = 403, description = "A partner named another partner", body = Problem),
    ))]
pub async fn get_usage(
    access: web::Data<Access>,
    user: AuthenticatedUser,
    params: Query<UsageParams>,
) -> Result<HttpResponse, ApiError> {
    let partner = match (user.as_partner(), params.partner_id) {
        (Some(me), None) => me,
        (Some(me), Some(id)) if id == me.as_uuid() => me,
        (Some(_), Some(_)) => {
            return Err(ApiError::Forbidden(
                "a partner sees only its own usage".into(),
            ));
        }
        (None, Some(id)) => PartnerId::from_uuid(id),
        (None, None) => {
            return Err(ApiError::validation(
                "partner_id",
                "is required for an admin: whose usage",
            ));
        }
    };
    let to = params.to.unwrap_or_else(|| access.clock.now().date_naive());
    let from = params.from.unwrap_or(to - chrono::Days::new(29));
    if from > to {
        return Err(ApiError::validation("from", "must not be after `to`"));
    }
    if (to - from).num_days() >= i64::try_from(MAX_REPORT_DAYS).unwrap_or(i64::MAX) {
        return Err(ApiError::validation(
            "from",
            format!("the range may cover at most {MAX_REPORT_DAYS} days"),
        ));
    }
    Ok(HttpResponse::Ok().json(usage::report(&access, partner, from, to).await?))
}

/// A partner's request limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    pub partner_id: Uuid,
    /// Requests per minute, across every instance; a minute's worth may come in one burst.
    pub requests_per_minute: u32,
    /// `true` when no limit of its own is set and `limits.requests_per_minute` applies.
    pub is_default: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LimitsRequest {
    /// 1 to 1000000; `null` (or left out) removes the partner's own limit, so the default
    /// applies again.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub requests_per_minute: Option<u32>,
}

/// A count as JSON Schema reads an `integer`: `350` and `350.0` alike (a client that writes
/// every number as a float is not wrong). Anything with a fraction, negative or too large is
/// refused. A request count, not money.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // Exact: a whole f64 within u32's range converts without loss.
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|u| u32::try_from(u).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {n}")))
}

/// The partner named in the path, as the auth module knows it (404 for no such partner).
async fn view(access: &Access, partner: Uuid) -> LimitsView {
    let own = access.own_limit(partner).await;
    LimitsView {
        partner_id: partner,
        requests_per_minute: own.unwrap_or(access.settings.requests_per_minute),
        is_default: own.is_none(),
    }
}

/// A partner's request limit (admin).
#[utoipa::path(get, path = "/api/v1/partners/{id}/limits", tag = "partners", operation_id = "getPartnerLimits",
    params(("id" = Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The limit that applies to the partner", body = LimitsView),
        (status = 404, description = "No such partner", body = Problem),
    ))]
pub async fn get_limits(
    auth: web::Data<Auth>,
    access: web::Data<Access>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = crate::auth::service::partner_named(&auth, &id)
        .await?
        .as_uuid();
    Ok(HttpResponse::Ok().json(view(&access, partner).await))
}

/// Set a partner's own request limit, or go back to the default (admin). This instance applies
/// it at once, the others within five seconds.
#[utoipa::path(put, path = "/api/v1/partners/{id}/limits", tag = "partners", operation_id = "setPartnerLimits",
    request_body = LimitsRequest,
    params(("id" = Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The limit that now applies", body = LimitsView),
        (status = 404, description = "No such partner", body = Problem),
    ))]
pub async fn put_limits(
    auth: web::Data<Auth>,
    access: web::Data<Access>,
    _admin: AdminUser,
    id: web::Path<String>,
    body: Json<LimitsRequest>,
) -> Result<HttpResponse, ApiError> {
    let limit = body.requests_per_minute;
    if limit.is_some_and(|l| !(1..=MAX_REQUESTS_PER_MINUTE).contains(&l)) {
        return Err(ApiError::validation(
            "requests_per_minute",
            format!("must be between 1 and {MAX_REQUESTS_PER_MINUTE}, or null for the default"),
        ));
    }
    let partner = crate::auth::service::partner_named(&auth, &id)
        .await?
        .as_uuid();
    store::set_own_limit(&access.db, partner, limit, access.clock.now())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    access.remember(partner, limit);
    tracing::info!(partner_id = %partner, ?limit, "partner request limit set");
    Ok(HttpResponse::Ok().json(view(&access, partner).await))
}

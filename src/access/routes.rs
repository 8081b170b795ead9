//! HTTP routes of `access`: an admin reads and sets a partner's request limit.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Access, store};
use crate::auth::{AdminUser, Auth, UserId};
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::settings::MAX_REQUESTS_PER_MINUTE;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/partners/{id}/limits")
            .route(web::get().to(get_limits))
            .route(web::put().to(put_limits)),
    );
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
    pub requests_per_minute: Option<u32>,
}

/// The partner named in the path, as the auth module knows it (404 for no such partner).
async fn partner(auth: &Auth, raw: &str) -> Result<Uuid, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such partner".into()))?;
    let partner = crate::auth::service::get_partner(auth, UserId::from_uuid(id)).await?;
    Ok(partner.id)
}

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
    let partner = partner(&auth, &id).await?;
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
    let partner = partner(&auth, &id).await?;
    store::set_own_limit(&access.db, partner, limit, access.clock.now())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    access.remember(partner, limit);
    tracing::info!(partner_id = %partner, ?limit, "partner request limit set");
    Ok(HttpResponse::Ok().json(view(&access, partner).await))
}

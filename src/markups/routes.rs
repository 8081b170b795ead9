//! HTTP routes of partner pricing: admins set and read a partner's markups and their history; a
//! partner reads its own.

use actix_web::{HttpResponse, web};

use super::domain::{MarkupsError, PricingChanges, PricingRequest, PricingView};
use super::{Markups, store};
use crate::auth::service as accounts;
use crate::auth::{AdminUser, Auth, AuthenticatedUser, PartnerId, Role};
use crate::error::{ApiError, Problem};
use crate::extract::Json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/partners/{id}/pricing")
            .route(web::get().to(get))
            .route(web::put().to(put)),
    )
    .service(web::resource("/partners/{id}/pricing/changes").route(web::get().to(changes)));
}

/// The partner named by the path, which must exist (another id, or an admin's, is not found).
async fn view(markups: &Markups, partner: PartnerId) -> Result<PricingView, ApiError> {
    let stored = store::find(&markups.db, partner)
        .await
        .map_err(MarkupsError::from)?;
    Ok(match stored {
        Some(s) => PricingView::new(
            partner.as_uuid(),
            &s.schedule,
            Some((s.updated_at, s.updated_by)),
        ),
        None => PricingView::new(
            partner.as_uuid(),
            &super::MarkupSchedule::default_of(markups.default_bps),
            None,
        ),
    })
}

/// A partner's pricing (admins; a partner its own): its markup and per-pair overrides, or the
/// default that applies.
#[utoipa::path(get, path = "/api/v1/partners/{id}/pricing", tag = "partners", operation_id = "getPartnerPricing",
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The partner's pricing", body = PricingView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner (or another partner's)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "markups.get", skip_all, fields(partner_id = %id))]
pub async fn get(
    markups: web::Data<Markups>,
    auth: web::Data<Auth>,
    user: AuthenticatedUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = accounts::partner_named(&auth, &id).await?;
    if user.role() != Role::Admin && user.id().as_uuid() != partner.as_uuid() {
        return Err(MarkupsError::PartnerNotFound.into());
    }
    Ok(HttpResponse::Ok().json(view(&markups, partner).await?))
}

/// Sets a partner's pricing (admin): the whole schedule, replacing the previous one. It applies
/// to prices made after it, never to existing quotes or conversions; the change is recorded.
#[utoipa::path(put, path = "/api/v1/partners/{id}/pricing", tag = "partners", operation_id = "setPartnerPricing",
    request_body = PricingRequest,
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The partner's pricing as set", body = PricingView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A markup above the maximum, or a pair that is not FROM/TO", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "markups.put", skip_all, fields(partner_id = %id))]
pub async fn put(
    markups: web::Data<Markups>,
    auth: web::Data<Auth>,
    admin: AdminUser,
    id: web::Path<String>,
    body: Json<PricingRequest>,
) -> Result<HttpResponse, ApiError> {
    let partner = accounts::partner_named(&auth, &id).await?;
    let schedule = body.into_inner().parse(markups.max_bps)?;
    store::replace(
        &markups.db,
        partner,
        &schedule,
        admin.0.id.as_uuid(),
        markups.clock.now(),
    )
    .await
    .map_err(MarkupsError::from)?;
    markups.schedules.changed().await;
    tracing::info!(
        markup_bps = schedule.markup_bps,
        pairs = schedule.pairs.len(),
        "partner pricing set"
    );
    Ok(HttpResponse::Ok().json(view(&markups, partner).await?))
}

/// Who changed a partner's pricing, when, from what to what (admin), newest first.
#[utoipa::path(get, path = "/api/v1/partners/{id}/pricing/changes", tag = "partners", operation_id = "listPartnerPricingChanges",
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The changes, newest first (at most 100)", body = PricingChanges),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn changes(
    markups: web::Data<Markups>,
    auth: web::Data<Auth>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = accounts::partner_named(&auth, &id).await?;
    let changes = store::changes(&markups.db, partner, 100)
        .await
        .map_err(MarkupsError::from)?;
    Ok(HttpResponse::Ok().json(PricingChanges { data: changes }))
}

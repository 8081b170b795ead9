//! HTTP routes of `webhooks`: a partner's endpoints and their deliveries. Another partner's
//! endpoint or delivery is 404, never 403, so ids do not leak.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{EventSubscription, SubscribableEvent, WebhookUrl};
use super::service::{self, CreatedEndpoint, DeliveryView, ListedEndpoint, RotatedSecret};
use super::{DeliverWebhooks, WebhookError, Webhooks};
use crate::auth::PartnerUser;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Query};
use crate::idempotency::{IdempotencyHeader, IdempotencyKey};
use crate::pagination::{Page, PageParams};
use crate::tasks::{TaskRegistry, Tasks};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(web::resource("/webhooks/{id}").route(web::delete().to(delete)))
    .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(rotate_secret)))
    .service(web::resource("/webhooks/{id}/test").route(web::post().to(test)))
    .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(deliveries)))
    .service(
        web::resource("/webhooks/{id}/deliveries/{delivery_id}/retry").route(web::post().to(retry)),
    );
}

#[derive(Deserialize, ToSchema)]
pub struct CreateEndpoint {
    /// Where to POST events: `https` (plain `http` only where the deployment allows it), on a
    /// public address.
    #[schema(
        example = "https://partner.example/webhooks",
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://",
        max_length = 2048,
        value_type = String
    )]
    pub url: WebhookUrl,
    /// Event types to receive (at least one; a type listed twice counts once).
    #[schema(value_type = Vec<SubscribableEvent>, min_items = 1, example = json!(["conversion.created", "conversion.finalized"]))]
    pub events: EventSubscription,
}

/// The partner's live endpoints.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<ListedEndpoint>,
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| WebhookError::EndpointNotFound.into())
}

/// Asks for a dispatcher run now rather than at its next tick. Best effort: the schedule finds
/// the delivery anyway.
async fn dispatch_soon(tasks: &Tasks, registry: &TaskRegistry) {
    if let Err(e) = crate::tasks::enqueue_job(tasks, registry, &DeliverWebhooks::default()).await {
        tracing::warn!(error = %e, "could not enqueue the webhook dispatcher; its schedule will run it");
    }
}

/// Register a webhook endpoint (partner). The answer holds the signing secret, shown only
/// here. Deliveries follow the Standard Webhooks specification: verify `webhook-signature`
/// over `{webhook-id}.{webhook-timestamp}.{body}` with any Standard Webhooks library. Send
/// `Idempotency-Key` to make retries safe: the same key and body return the original endpoint
/// (200); the same key with another body is refused (422).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "createWebhookEndpoint",
    request_body = CreateEndpoint, security(("bearer" = ["partner"])),
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header,
        description = "1 to 255 printable characters. Retrying with the same key and body (the same URL and set of events) returns the original endpoint with its current secret (200), or 404 if it was deleted since; the same key with another body is refused (422). Keys are remembered for `conversions.idempotency_ttl_secs`.")),
    responses(
        (status = 201, description = "The endpoint and its signing secret (shown once)", body = CreatedEndpoint,
            headers(("Location" = String, description = "The endpoint's deliveries"))),
        (status = 200, description = "Replay of an `Idempotency-Key`: the original endpoint and its current signing secret", body = CreatedEndpoint,
            headers(("Location" = String, description = "The endpoint's deliveries"))),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`/problems/webhook-endpoint-limit`: the partner has as many endpoints as allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Replay of an `Idempotency-Key` whose endpoint was deleted since", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`/problems/validation-failed` (url form, events), `/problems/webhook-target-forbidden` (the URL resolves to a loopback, private, link-local or metadata address) or `/problems/idempotency-key-reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    webhooks: web::Data<Webhooks>,
    partner: PartnerUser,
    body: Json<CreateEndpoint>,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let (created, new) =
        service::create_endpoint(&webhooks, partner.id(), &body.url, &body.events, key.key())
            .await?;
    let mut res = if new {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header((
            "Location",
            format!("/api/v1/webhooks/{}/deliveries", created.endpoint.id),
        ))
        .json(created))
}

/// The partner's webhook endpoints (without secrets), each with its circuit breaker: `closed`
/// (delivering), `open` (after `webhooks.breaker_failures` failed attempts in a row, deliveries
/// wait until `paused_until`, postponed and not failed) or `half_open` (the pause is over: one
/// delivery at a time is tried, and a 2xx closes it).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "listWebhookEndpoints",
    security(("bearer" = ["partner"])),
    responses(
        (status = 200, description = "The partner's live endpoints, oldest first, with their breakers", body = EndpointList),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    webhooks: web::Data<Webhooks>,
    partner: PartnerUser,
) -> Result<HttpResponse, ApiError> {
    let data = service::list_endpoints(&webhooks, partner.id()).await?;
    Ok(HttpResponse::Ok().json(EndpointList { data }))
}

/// Delete a webhook endpoint: nothing more is sent to it; its pending deliveries become dead.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "deleteWebhookEndpoint",
    params(("id" = Uuid, Path, description = "Endpoint id")), security(("bearer" = ["partner"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of this partner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    webhooks: web::Data<Webhooks>,
    partner: PartnerUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::delete_endpoint(&webhooks, partner.id(), endpoint_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate an endpoint's signing secret. The new secret signs from now on; the previous one
/// keeps signing beside it for 24 hours (`webhook-signature` then carries both, space-separated),
/// so the receiver can switch without missing a delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotateWebhookSecret",
    params(("id" = Uuid, Path, description = "Endpoint id")), security(("bearer" = ["partner"])),
    responses(
        (status = 200, description = "The new secret (shown once) and until when the previous one signs too", body = RotatedSecret),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of this partner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    webhooks: web::Data<Webhooks>,
    partner: PartnerUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rotated = service::rotate_secret(&webhooks, partner.id(), endpoint_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(rotated))
}

/// Send a `ping` event to an endpoint, to check it receives and verifies deliveries. An endpoint
/// may be pinged `webhooks.test_pings_per_minute` times a minute (5: all at once, then one every
/// 12 seconds), counted across instances; beyond, 429 `/problems/webhook-test-limit` with
/// `Retry-After`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "testWebhookEndpoint",
    params(("id" = Uuid, Path, description = "Endpoint id")), security(("bearer" = ["partner"])),
    responses(
        (status = 202, description = "The ping's delivery, queued", body = DeliveryView),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of this partner", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`/problems/webhook-test-limit`: the endpoint's test pings per minute are used up (or `/problems/too-many-requests`: the partner's request limit)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a ping would be accepted"))),
    ))]
pub async fn test(
    webhooks: web::Data<Webhooks>,
    tasks: web::Data<Tasks>,
    registry: web::Data<TaskRegistry>,
    partner: PartnerUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery = service::ping(&webhooks, partner.id(), endpoint_id(&path)?).await?;
    dispatch_soon(&tasks, &registry).await;
    Ok(HttpResponse::Accepted().json(delivery))
}

/// An endpoint's deliveries, newest first: state, attempts, last status code, latency and error,
/// next retry.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "listWebhookDeliveries",
    params(("id" = Uuid, Path, description = "Endpoint id"), PageParams), security(("bearer" = ["partner"])),
    responses(
        (status = 200, description = "One page of deliveries", body = Page<DeliveryView>),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of this partner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    webhooks: web::Data<Webhooks>,
    partner: PartnerUser,
    path: web::Path<String>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint_id(&path)?;
    let (limit, cursor) = params.limit_and_cursor();
    let page = service::deliveries(&webhooks, partner.id(), endpoint, limit, cursor).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Retry a delivery now. A dead (or delivered) delivery starts a fresh retry schedule; the
/// event keeps its `webhook-id`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks", operation_id = "retryWebhookDelivery",
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id"),
    ),
    security(("bearer" = ["partner"])),
    responses(
        (status = 202, description = "The delivery, due now", body = DeliveryView),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery of this partner's endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry(
    webhooks: web::Data<Webhooks>,
    tasks: web::Data<Tasks>,
    registry: web::Data<TaskRegistry>,
    partner: PartnerUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (endpoint, delivery) = path.into_inner();
    let endpoint = endpoint_id(&endpoint)?;
    let delivery =
        Uuid::parse_str(&delivery).map_err(|_| ApiError::from(WebhookError::DeliveryNotFound))?;
    let view = service::retry(&webhooks, partner.id(), endpoint, delivery).await?;
    dispatch_soon(&tasks, &registry).await;
    Ok(HttpResponse::Accepted().json(view))
}

//! HTTP routes of `conversions`. The list, export and summary (`GET /conversions`,
//! `/conversions/summary`) belong to `history`; they share the `/conversions` resource here so
//! that an unsupported method answers 405.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::Conversions;
use super::batch::{self, BatchItem, BatchView, MAX_BATCH_ITEMS};
use super::create::ConversionRequest;
use super::service::{self, ConversionView};
use crate::auth::{AuthenticatedUser, PartnerUser};
use crate::currencies::CurrencyCode;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::idempotency::{IdempotencyHeader, IdempotencyKey};
use crate::money::RequestedAmount;
use uuid::Uuid;

/// Registers the conversion routes under `/api/v1`, except `/conversions` itself, whose POST
/// ([`create`]) shares the resource with history's GET: `startup` builds that one resource, so
/// that a wrong method is a 405 with `Allow` and neither module imports the other's routes.
/// Call after the static `/conversions/*` paths of other modules (history's `summary`), since
/// `/conversions/{id}` would take them for an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `/conversions/{id}`, which would otherwise take `batch` for an id.
    cfg.service(
        web::resource("/conversions/batch")
            .app_data(
                web::JsonConfig::default()
                    .limit(BATCH_BODY_LIMIT_BYTES)
                    .error_handler(crate::error::json_error),
            )
            .route(web::post().to(create_batch)),
    )
    .service(web::resource("/conversions/{id}").route(web::get().to(get)))
    .service(web::resource("/conversions/{id}/cancel").route(web::post().to(cancel)));
}

#[derive(Deserialize, ToSchema)]
pub struct CreateConversion {
    /// Source currency code.
    #[schema(example = "EGP")]
    pub from: CurrencyCode,
    /// Target currency code.
    #[schema(example = "USD")]
    pub to: CurrencyCode,
    /// Decimal string, positive, with at most the source currency's minor units.
    #[schema(value_type = crate::money::PositiveDecimal, example = "100.00")]
    pub amount: RequestedAmount,
    /// Convert at this quote's locked rate (see `POST /quotes`): same pair, same amount when
    /// the quote fixed one, before it expires.
    pub quote_id: Option<Uuid>,
}

/// Body limit of a batch: room for [`MAX_BATCH_ITEMS`] items of up to 512 bytes each (an item
/// with a quote id is about 120), above the server-wide `server.body_limit_bytes`.
pub const BATCH_BODY_LIMIT_BYTES: usize = MAX_BATCH_ITEMS * 512;

/// One conversion of a batch. Every field is checked and reported per item (so the fields are
/// read as text here and parsed item by item: one bad item does not hide the others).
#[derive(Deserialize, ToSchema)]
pub struct BatchItemBody {
    /// Source currency code.
    #[schema(value_type = CurrencyCode, example = "EUR")]
    pub from: Option<String>,
    /// Target currency code.
    #[schema(value_type = CurrencyCode, example = "USD")]
    pub to: Option<String>,
    /// Decimal string, positive, with at most the source currency's minor units.
    #[schema(value_type = crate::money::PositiveDecimal, example = "100.00")]
    pub amount: Option<String>,
    /// Convert this item at a quote's locked rate.
    #[schema(value_type = Option<Uuid>)]
    pub quote_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateBatch {
    /// 1 to 1,000 conversions, made all or nothing, answered in this order.
    pub items: Vec<BatchItemBody>,
}

/// Convert up to 1,000 amounts at once, all or nothing (partner). If any item is invalid the
/// answer is 422 listing every bad item as `items[<index>].<field>` and nothing is stored;
/// otherwise 201 with the conversions in request order. `Idempotency-Key` covers the whole
/// batch: the same key and items return the original batch (200).
#[utoipa::path(post, path = "/api/v1/conversions/batch", tag = "conversions", operation_id = "createConversionBatch",
    request_body = CreateBatch,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Makes a retried batch return the original batch (200); the same key with other items is refused (422). Keys are remembered for `conversions.idempotency_ttl_secs`.")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Every conversion created, in request order", body = BatchView),
        (status = 200, description = "Replay of an Idempotency-Key: the original batch", body = BatchView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the batch limit, 512,000 bytes (1,000 items of up to 512 bytes)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid items (each listed by index and field), no or too many items, reused key; nothing stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "With `rates.sources`: the sources do not agree on a rate of a currency of the request now (`/problems/rate-unavailable`); retry after `Retry-After`", body = Problem),
    ))]
pub async fn create_batch(
    conversions: web::Data<Conversions>,
    partner: PartnerUser,
    body: Json<CreateBatch>,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let items: Vec<BatchItem<'_>> = body
        .items
        .iter()
        .map(|i| BatchItem {
            from: i.from.as_deref(),
            to: i.to.as_deref(),
            amount: i.amount.as_deref(),
            quote_id: i.quote_id.as_deref(),
        })
        .collect();
    let (view, created) = batch::create(&conversions, partner.id(), &items, key.key()).await?;
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

fn conversion_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such conversion".into()))
}

/// Convert an amount (partner). The result is `temporary` for the holding period, then
/// `permanent`. Send `Idempotency-Key` to make retries safe: the same key and body return the
/// original conversion (200); the same key with another body is refused (422).
#[utoipa::path(post, path = "/api/v1/conversions", tag = "conversions", operation_id = "createConversion",
    request_body = CreateConversion,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header,
        description = "1 to 255 printable characters. Retrying with the same key and body returns the original conversion (200); the same key with another body is refused (422). Keys are remembered for `conversions.idempotency_ttl_secs`.")),
    security(("bearer" = ["partner"])),
    responses(
        (status = 201, description = "The conversion, `temporary` for the holding period", body = ConversionView, headers(("Location" = String, description = "URL of the conversion"))),
        (status = 200, description = "Replay of an `Idempotency-Key`: the original conversion", body = ConversionView, headers(("Location" = String, description = "URL of the conversion"))),
        (status = 404, description = "No rate is stored for the pair", body = Problem),
        (status = 503, description = "With `rates.sources`: the sources do not agree on a rate of a currency of the request now (`/problems/rate-unavailable`); retry after `Retry-After`", body = Problem),
        (status = 409, description = "The quote expired (`/problems/quote-expired`) or was already used (`/problems/quote-used`)", body = Problem),
        (status = 422, description = "Invalid amount or currency, unsupported/disabled/retired currency, stale rate, reused key, unknown quote or one for another pair or amount", body = Problem),
    ))]
pub async fn create(
    conversions: web::Data<Conversions>,
    partner: PartnerUser,
    body: Json<CreateConversion>,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let (view, created) = super::create::create(
        &conversions,
        partner.id(),
        ConversionRequest {
            from: body.from,
            to: body.to,
            amount: &body.amount,
            quote_id: body.quote_id,
        },
        key.key(),
    )
    .await?;
    let mut res = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header(("Location", format!("/api/v1/conversions/{}", view.id)))
        .json(view))
}

/// One conversion. A partner sees only its own; another partner's is 404.
#[utoipa::path(get, path = "/api/v1/conversions/{id}", tag = "conversions", operation_id = "getConversion",
    params(("id" = uuid::Uuid, Path, description = "Conversion id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversion", body = ConversionView),
        (status = 404, description = "No such conversion (or another partner's)", body = Problem),
    ))]
pub async fn get(
    conversions: web::Data<Conversions>,
    user: AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = user.as_partner();
    let view = service::get(&conversions, conversion_id(&path)?, partner).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Cancel one's own `temporary` conversion within its holding period (partner). A
/// `permanent` conversion is immutable (409 `/problems/conflict`); once `finalizes_at` has
/// passed, a conversion not yet marked permanent is being finalized and cannot be cancelled
/// either (409 `/problems/conversion-finalizing`).
#[utoipa::path(post, path = "/api/v1/conversions/{id}/cancel", tag = "conversions", operation_id = "cancelConversion",
    params(("id" = uuid::Uuid, Path, description = "Conversion id")), security(("bearer" = ["partner"])),
    responses(
        (status = 200, description = "The conversion, now `cancelled`", body = ConversionView),
        (status = 404, description = "No such conversion (or another partner's)", body = Problem),
        (status = 409, description = "The conversion is not `temporary` any more, or its holding period is over and it is being finalized", body = Problem),
    ))]
pub async fn cancel(
    conversions: web::Data<Conversions>,
    partner: PartnerUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = service::cancel(&conversions, conversion_id(&path)?, partner.id()).await?;
    Ok(HttpResponse::Ok().json(view))
}

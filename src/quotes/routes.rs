//! HTTP routes of `quotes`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::service::{self, QuoteRequest, QuoteView};
use super::{Lock, Quotes};
use crate::auth::PartnerUser;
use crate::currencies::CurrencyCode;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::idempotency::{IdempotencyHeader, IdempotencyKey};
use crate::money::RequestedAmount;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/quotes").route(web::post().to(create)))
        .service(web::resource("/quotes/{id}").route(web::get().to(get)));
}

#[derive(Deserialize, ToSchema)]
pub struct CreateQuote {
    /// Source currency code.
    #[schema(example = "EUR")]
    pub from: CurrencyCode,
    /// Target currency code.
    #[schema(example = "USD")]
    pub to: CurrencyCode,
    /// A fixed amount of `from` (decimal string): the quote shows the result, and a conversion
    /// on it must be for exactly this amount, once. Required for every lock but `none`; left
    /// out, the quote is indicative only.
    #[schema(value_type = Option<crate::money::PositiveDecimal>, example = "100.00")]
    pub amount: Option<RequestedAmount>,
    /// How long the rate is held: `none` (indicative), `five_minutes`, `hour` or `day`.
    #[schema(example = "hour")]
    pub lock: Lock,
}

/// Lock a rate (partner). The quoted rate is the reference rate less the lock's spread
/// (`quotes.spread_bps.<lock>`), both shown. Convert on it with `quote_id` in
/// `POST /conversions` before `expires_at`. Send `Idempotency-Key` to make retries safe: the
/// same key and body return the original quote (200); the same key with another body is
/// refused (422).
#[utoipa::path(post, path = "/api/v1/quotes", tag = "quotes", operation_id = "createQuote",
    request_body = CreateQuote, security(("bearer" = ["partner"])),
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header,
        description = "1 to 255 printable characters. Retrying with the same key and body returns the original quote as it is now (200), even when the partner is at its cap on open locks; the same key with another body is refused (422). Keys are remembered for `conversions.idempotency_ttl_secs`.")),
    responses(
        (status = 201, description = "The quote: its locked rate, spread and expiry", body = QuoteView, headers(("Location" = String, description = "URL of the quote"))),
        (status = 200, description = "Replay of an `Idempotency-Key`: the original quote, with its status now", body = QuoteView, headers(("Location" = String, description = "URL of the quote"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No rates for this pair", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "With `rates.sources`: the sources do not agree on a rate of a currency of the request now (`/problems/rate-unavailable`); retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid lock, amount or currency (a lock other than `none` needs an amount); stale reference rate; reused `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The partner holds as many open rate locks, or as much notional, as it may (`/problems/too-many-open-locks`)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the first open lock expires"))),
    ))]
pub async fn create(
    quotes: web::Data<Quotes>,
    partner: PartnerUser,
    body: Json<CreateQuote>,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let (view, created) = service::create(
        &quotes,
        partner.id(),
        QuoteRequest {
            from: body.from,
            to: body.to,
            amount: body.amount.as_ref(),
            lock: body.lock,
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
        .insert_header(("Location", format!("/api/v1/quotes/{}", view.id)))
        .json(view))
}

/// One of the partner's own quotes, with its status now; another partner's is 404.
#[utoipa::path(get, path = "/api/v1/quotes/{id}", tag = "quotes", operation_id = "getQuote",
    params(("id" = uuid::Uuid, Path, description = "Quote id")), security(("bearer" = ["partner"])),
    responses(
        (status = 200, description = "The quote and its status now", body = QuoteView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    quotes: web::Data<Quotes>,
    partner: PartnerUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id =
        uuid::Uuid::parse_str(&path).map_err(|_| ApiError::NotFound("no such quote".into()))?;
    let view = service::get(&quotes, id, partner.id()).await?;
    Ok(HttpResponse::Ok().json(view))
}

//! HTTP routes of `rates`: thin handlers that parse the query, call [`super::service`] and shape
//! the response. Every route requires an authenticated caller.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::Rates;
use super::pricing::{ConversionQuote, PriceRequest, Pricer, Purpose};
use super::series::{self, Interval, Series};
use super::service::{self, RatesTable};
use crate::auth::AuthenticatedUser;
use crate::currencies::{CurrencyCode, CurrencyCodes};
use crate::error::{ApiError, Problem};
use crate::extract::Query;
use crate::money::RequestedAmount;

/// Registers the rates routes (inside `/api/v1`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources rather than `cfg.route`: a route carries a method guard, so another method
    // would fall through to the 404 of the default service instead of a 405 with `Allow`.
    cfg.service(web::resource("/rates/latest").route(web::get().to(latest)))
        .service(web::resource("/rates/at").route(web::get().to(at)))
        .service(web::resource("/rates/series").route(web::get().to(series_handler)))
        .service(web::resource("/convert").route(web::get().to(convert)));
}

/// `expand=sources` (the only expansion), or nothing.
fn expand_sources(expand: Option<&str>) -> Result<bool, ApiError> {
    match expand.map(str::trim) {
        None | Some("") => Ok(false),
        Some("sources") => Ok(true),
        Some(_) => Err(ApiError::validation(
            "expand",
            "the only expansion is `sources`",
        )),
    }
}

/// Query of `GET /rates/latest`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<CurrencyCode>,
    /// Comma-separated currencies (default: every enabled currency that has a rate).
    pub symbols: Option<CurrencyCodes>,
    /// `sources`: add, per currency, the rates sources used and excluded (consensus feed).
    pub expand: Option<String>,
    /// `mine`: the caller's all-in rates, each the reference rate less the partner's markup for
    /// `base` → that currency (what a conversion would get now); `reference` (default): the
    /// reference rates.
    pub pricing: Option<RatesPricing>,
}

/// Which rates `GET /rates/latest` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RatesPricing {
    /// The reference rates.
    Reference,
    /// The caller's all-in rates (for an admin, the reference rates).
    Mine,
}

/// Query of `GET /rates/at`: exactly one of `timestamp` and `date`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<CurrencyCode>,
    /// Comma-separated currencies (default: every enabled currency that has a rate).
    pub symbols: Option<CurrencyCodes>,
    /// `sources`: add, per currency, the rates sources used and excluded (consensus feed).
    pub expand: Option<String>,
    /// RFC 3339 instant. Give exactly one of `timestamp` and `date`.
    pub timestamp: Option<DateTime<Utc>>,
    /// `YYYY-MM-DD`: the rates in force at the end of that day (UTC). Give exactly one of
    /// `timestamp` and `date`.
    pub date: Option<NaiveDate>,
}

/// Query of `GET /rates/series`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<CurrencyCode>,
    /// Comma-separated currencies.
    pub symbols: CurrencyCodes,
    /// RFC 3339 instant or `YYYY-MM-DD` (start of day).
    pub from: InstantOrDate,
    /// RFC 3339 instant or `YYYY-MM-DD` (end of day).
    pub to: InstantOrDate,
    /// `raw` (each stored change), `hour` or `day` (default).
    pub interval: Option<Interval>,
}

/// Query of `GET /convert`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConvertParams {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// Amount in the source currency, as a decimal with at most its minor units.
    #[param(value_type = crate::money::PositiveDecimal)]
    pub amount: RequestedAmount,
    /// RFC 3339 instant to price at (default: now).
    pub at: Option<DateTime<Utc>>,
}

/// A bound of a time range in a query: an RFC 3339 instant, or a whole UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstantOrDate {
    /// That instant.
    Instant(DateTime<Utc>),
    /// The whole UTC day.
    Date(NaiveDate),
}

impl InstantOrDate {
    /// The instant itself, or the start (`end = false`) or end of the day.
    fn resolve(self, end: bool) -> DateTime<Utc> {
        match self {
            InstantOrDate::Instant(t) => t,
            InstantOrDate::Date(d) if end => end_of_day(d),
            InstantOrDate::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        }
    }
}

impl<'de> Deserialize<'de> for InstantOrDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if let Ok(date) = NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
            return Ok(InstantOrDate::Date(date));
        }
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| InstantOrDate::Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{}` is neither an RFC 3339 instant such as 2024-11-08T15:00:00Z nor a date such as 2024-11-08",
                    raw.chars().take(40).collect::<String>()
                ))
            })
    }
}

impl utoipa::PartialSchema for InstantOrDate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
            )
            .description(Some("An RFC 3339 instant, or a date (a whole UTC day)"))
            .into()
    }
}

impl utoipa::ToSchema for InstantOrDate {}

fn base_or_default(state: &Rates, base: Option<CurrencyCode>) -> CurrencyCode {
    base.unwrap_or(state.settings.base)
}

fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + TimeDelta::days(1)
        - TimeDelta::microseconds(1)
}

/// Answers with `body` as JSON, a strong ETag of its bytes, and a 304 when the client has it.
fn cached_json<T: Serialize>(
    req: &HttpRequest,
    body: &T,
    max_age: u64,
) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(anyhow::Error::from)?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    Ok(json_with_etag(req, bytes.into(), &etag, max_age))
}

/// Answers with a JSON `body` already serialised and its `etag`, and a 304 when the client has
/// it.
fn json_with_etag(
    req: &HttpRequest,
    body: actix_web::web::Bytes,
    etag: &str,
    max_age: u64,
) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut res = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, format!("private, max-age={max_age}")));
    if matches {
        return res.finish();
    }
    res.content_type("application/json").body(body)
}

/// The latest rates against any supported base; served from memory.
#[utoipa::path(get, path = "/api/v1/rates/latest", tag = "rates", operation_id = "getLatestRates",
    params(LatestParams, ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when the rates have not changed")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest rates against `base`", body = RatesTable, headers(
            ("ETag" = String, description = "Strong validator of the body, for `If-None-Match`"),
            ("Cache-Control" = String, description = "`private, max-age=N`: how long the answer may be reused"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "Strong validator of the body, for `If-None-Match`"),
            ("Cache-Control" = String, description = "`private, max-age=N`: how long the answer may be reused"),
        )),
        (status = 404, description = "No rates are stored for a requested currency", body = Problem),
        (status = 422, description = "A currency is invalid, unsupported, disabled or retired", body = Problem),
    ))]
#[tracing::instrument(name = "rates.latest", skip_all, fields(base = ?params.base))]
pub async fn latest(
    req: HttpRequest,
    state: web::Data<Rates>,
    user: AuthenticatedUser,
    params: Query<LatestParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let base = base_or_default(&state, params.base);
    let symbols = params.symbols.map(CurrencyCodes::into_vec);
    let expand = expand_sources(params.expand.as_deref())?;
    if params.pricing == Some(RatesPricing::Mine) && user.role() == crate::auth::Role::Partner {
        let mut table = service::rates_table(&state, base, symbols, None, expand).await?;
        let partner = crate::auth::PartnerId::from_uuid(user.id().as_uuid());
        crate::rates::pricing::all_in(&state, &mut table, partner).await?;
        return cached_json(&req, &table, state.settings.cache_ttl_secs);
    }
    let rendered = service::latest_rendered(&state, base, symbols, expand).await?;
    Ok(json_with_etag(
        &req,
        rendered.body.clone(),
        &rendered.etag,
        state.settings.cache_ttl_secs,
    ))
}

/// The rates in force at an instant (last observation at or before it).
#[utoipa::path(get, path = "/api/v1/rates/at", tag = "rates", operation_id = "getRatesAt",
    params(AtParams, ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when the rates have not changed")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The rates in force at that instant", body = RatesTable, headers(
            ("ETag" = String, description = "Strong validator of the body, for `If-None-Match`"),
            ("Cache-Control" = String, description = "`private, max-age=N`: how long the answer may be reused"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "Strong validator of the body, for `If-None-Match`"),
            ("Cache-Control" = String, description = "`private, max-age=N`: how long the answer may be reused"),
        )),
        (status = 404, description = "No rates are stored at or before that instant", body = Problem),
        (status = 422, description = "A parameter is invalid (exactly one of `timestamp` and `date`)", body = Problem),
    ))]
#[tracing::instrument(name = "rates.at", skip_all, fields(base = ?params.base))]
pub async fn at(
    req: HttpRequest,
    state: web::Data<Rates>,
    _user: AuthenticatedUser,
    params: Query<AtParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let base = base_or_default(&state, params.base);
    let symbols = params.symbols.map(CurrencyCodes::into_vec);
    let instant = match (params.timestamp, params.date) {
        (Some(t), None) => t,
        (None, Some(d)) => end_of_day(d),
        _ => {
            return Err(ApiError::validation(
                "timestamp",
                "give exactly one of `timestamp` and `date`",
            ));
        }
    };
    let expand = expand_sources(params.expand.as_deref())?;
    let table = service::rates_table(&state, base, symbols, Some(instant), expand).await?;
    // Past rates do not change once stored.
    cached_json(&req, &table, 3600)
}

/// Open/high/low/close of each currency against `base` per interval.
#[utoipa::path(get, path = "/api/v1/rates/series", tag = "rates", operation_id = "getRateSeries",
    params(SeriesParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Open/high/low/close per interval and currency", body = Series),
        (status = 404, description = "No rates are stored for a requested currency", body = Problem),
        (status = 422, description = "A parameter is invalid", body = Problem),
    ))]
#[tracing::instrument(name = "rates.series", skip_all, fields(base = ?params.base))]
pub async fn series_handler(
    state: web::Data<Rates>,
    _user: AuthenticatedUser,
    params: Query<SeriesParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let base = base_or_default(&state, params.base);
    let symbols = params.symbols.into_vec();
    let from = params.from.resolve(false);
    let to = params.to.resolve(true);
    let interval = params.interval.unwrap_or(Interval::Day);
    let body = series::series(&state, base, &symbols, from, to, interval).await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Prices an amount without recording anything.
#[utoipa::path(get, path = "/api/v1/convert", tag = "rates", operation_id = "quoteConversion",
    params(ConvertParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The price of the amount; nothing is recorded", body = ConversionQuote,
            headers(("Cache-Control" = String, description = "`no-store`: a quote is for now only"))),
        (status = 404, description = "No rate is stored for the pair", body = Problem),
        (status = 503, description = "With `rates.sources`: the sources do not agree on a rate of a currency of the request now (`/problems/rate-unavailable`); retry after `Retry-After`", body = Problem),
        (status = 422, description = "A parameter is invalid, or a currency is unsupported, disabled or retired", body = Problem),
    ))]
#[tracing::instrument(name = "rates.convert", skip_all, fields(from = %params.from, to = %params.to))]
pub async fn convert(
    state: web::Data<Rates>,
    user: AuthenticatedUser,
    params: Query<ConvertParams>,
) -> Result<HttpResponse, ApiError> {
    let request = PriceRequest {
        from: params.from,
        to: params.to,
        amount: Some(&params.amount),
        at: params.at,
    };
    let partner = (user.role() == crate::auth::Role::Partner)
        .then(|| crate::auth::PartnerId::from_uuid(user.id().as_uuid()));
    let priced = Pricer::new(&state, Purpose::Indicative)
        .for_partner(partner)
        .price(request)
        .await?;
    // The `ConversionQuote` of the price, as serde writes it (see `quote_json`).
    let body = super::quote_json::conversion_quote(&priced)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(header::ContentType::json())
        .body(body))
}

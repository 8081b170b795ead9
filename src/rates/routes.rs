//! HTTP routes of `rates`: thin handlers that parse the query, call [`super::service`] and shape
//! the response. Every route requires an authenticated caller.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::Rates;
use super::pricing::{self, ConversionQuote, PriceRequest, Purpose};
use super::series::{self, Interval, Series};
use super::service::{self, RatesTable, parse_code, parse_symbols};
use crate::auth::AuthenticatedUser;
use crate::currencies::CurrencyCode;
use crate::error::{ApiError, Problem};

/// Registers the rates routes (inside `/api/v1`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources rather than `cfg.route`: a route carries a method guard, so another method
    // would fall through to the 404 of the default service instead of a 405 with `Allow`.
    cfg.service(web::resource("/rates/latest").route(web::get().to(latest)))
        .service(web::resource("/rates/at").route(web::get().to(at)))
        .service(web::resource("/rates/series").route(web::get().to(series_handler)))
        .service(web::resource("/convert").route(web::get().to(convert)));
}

/// Query of `GET /rates/latest`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<String>,
    /// Comma-separated currencies (default: every enabled currency that has a rate).
    pub symbols: Option<String>,
}

/// Query of `GET /rates/at`: exactly one of `timestamp` and `date`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<String>,
    /// Comma-separated currencies (default: every enabled currency that has a rate).
    pub symbols: Option<String>,
    /// RFC 3339 instant.
    pub timestamp: Option<String>,
    /// `YYYY-MM-DD`: the rates in force at the end of that day (UTC).
    pub date: Option<String>,
}

/// Query of `GET /rates/series`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Base currency (default: `rates.base`).
    pub base: Option<String>,
    /// Comma-separated currencies (required).
    pub symbols: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD` (start of day).
    pub from: String,
    /// RFC 3339 instant or `YYYY-MM-DD` (end of day).
    pub to: String,
    /// `raw` (each stored change), `hour` or `day` (default).
    pub interval: Option<String>,
}

/// Query of `GET /convert`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConvertParams {
    /// Source currency.
    pub from: String,
    /// Target currency.
    pub to: String,
    /// Amount in the source currency, as a decimal with at most its minor units.
    pub amount: String,
    /// RFC 3339 instant to price at (default: now).
    pub at: Option<String>,
}

fn base_or_default(state: &Rates, raw: Option<&str>) -> Result<CurrencyCode, ApiError> {
    match raw {
        Some(raw) => Ok(parse_code("base", raw)?),
        None => Ok(state.settings.rates.base),
    }
}

fn parse_instant(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(
                field,
                "must be an RFC 3339 timestamp such as 2024-11-08T15:00:00Z",
            )
        })
}

fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::validation(field, "must be a date such as 2024-11-08"))
}

fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + TimeDelta::days(1)
        - TimeDelta::microseconds(1)
}

/// An RFC 3339 instant, or a date taken at the start (`end = false`) or end of that day.
fn parse_bound(field: &'static str, raw: &str, end: bool) -> Result<DateTime<Utc>, ApiError> {
    if raw.trim().len() == 10 {
        let date = parse_date(field, raw)?;
        return Ok(if end {
            end_of_day(date)
        } else {
            date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
        });
    }
    parse_instant(field, raw)
}

/// Answers with `body` as JSON, a strong ETag of its bytes, and a 304 when the client has it.
fn cached_json<T: Serialize>(
    req: &HttpRequest,
    body: &T,
    max_age: u64,
) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(anyhow::Error::from)?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let cache_control = format!("private, max-age={max_age}");
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
        .insert_header((header::CACHE_CONTROL, cache_control));
    if matches {
        return Ok(res.finish());
    }
    Ok(res.content_type("application/json").body(bytes))
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
    _user: AuthenticatedUser,
    params: web::Query<LatestParams>,
) -> Result<HttpResponse, ApiError> {
    let base = base_or_default(&state, params.base.as_deref())?;
    let symbols = parse_symbols(params.symbols.as_deref())?;
    let table = service::rates_table(&state, base, symbols, None).await?;
    cached_json(&req, &table, state.settings.rates.cache_ttl_secs)
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
    params: web::Query<AtParams>,
) -> Result<HttpResponse, ApiError> {
    let base = base_or_default(&state, params.base.as_deref())?;
    let symbols = parse_symbols(params.symbols.as_deref())?;
    let instant = match (&params.timestamp, &params.date) {
        (Some(t), None) => parse_instant("timestamp", t)?,
        (None, Some(d)) => end_of_day(parse_date("date", d)?),
        _ => {
            return Err(ApiError::validation(
                "timestamp",
                "give exactly one of `timestamp` and `date`",
            ));
        }
    };
    let table = service::rates_table(&state, base, symbols, Some(instant)).await?;
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
    params: web::Query<SeriesParams>,
) -> Result<HttpResponse, ApiError> {
    let base = base_or_default(&state, params.base.as_deref())?;
    let symbols = parse_symbols(params.symbols.as_deref())?
        .ok_or_else(|| ApiError::validation("symbols", "is required"))?;
    let from = parse_bound("from", &params.from, false)?;
    let to = parse_bound("to", &params.to, true)?;
    let interval: Interval = params.interval.as_deref().unwrap_or("day").parse()?;
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
        (status = 422, description = "A parameter is invalid, or a currency is unsupported, disabled or retired", body = Problem),
    ))]
#[tracing::instrument(name = "rates.convert", skip_all, fields(from = %params.from, to = %params.to))]
pub async fn convert(
    state: web::Data<Rates>,
    _user: AuthenticatedUser,
    params: web::Query<ConvertParams>,
) -> Result<HttpResponse, ApiError> {
    let from = parse_code("from", &params.from)?;
    let to = parse_code("to", &params.to)?;
    let at = params
        .at
        .as_deref()
        .map(|t| parse_instant("at", t))
        .transpose()?;
    let request = PriceRequest {
        from,
        to,
        amount: &params.amount,
        at,
    };
    let quote = ConversionQuote::from(pricing::price(&state, request, Purpose::Quote).await?);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(quote))
}

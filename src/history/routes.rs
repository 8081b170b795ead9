//! HTTP routes of `history`: `GET /conversions` (JSON or CSV) and `GET /conversions/summary`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{AuthenticatedUser, PartnerId};
use crate::conversions::store::history::{self as store, HistoryFilter};
use crate::conversions::{ConversionView, Conversions, Status};
use crate::currencies::CurrencyCode;
use crate::error::{ApiError, Problem};
use crate::extract::Query;
use crate::money;
use crate::pagination::{Cursor, Page, PageLimit, PageParams};

/// Rows per database round trip while streaming a CSV export.
const EXPORT_CHUNK: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only conversions in this status.
    pub status: Option<Status>,
    /// Conversions from or to this currency.
    pub currency: Option<CurrencyCode>,
    /// Created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Admins only: one partner's conversions.
    pub partner_id: Option<Uuid>,
    /// `csv` for a CSV export (same as `Accept: text/csv`); `json` for a page of JSON whatever
    /// `Accept` says.
    pub format: Option<Format>,
    /// Items per page (JSON only; default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<PageLimit>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
}

/// What `GET /conversions` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One page of JSON.
    Json,
    /// Every matching conversion as CSV.
    Csv,
}

/// How `GET /conversions/summary` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Per UTC day and source currency.
    #[default]
    Day,
    /// Per currency pair.
    CurrencyPair,
}

fn filter(user: &AuthenticatedUser, p: &HistoryParams) -> Result<HistoryFilter, ApiError> {
    let asked = p.partner_id.map(PartnerId::from_uuid);
    let partner = match user.as_partner() {
        None => asked,
        Some(own) => {
            if asked.is_some_and(|id| id != own) {
                return Err(ApiError::Forbidden(
                    "only admins may filter by partner".into(),
                ));
            }
            Some(own)
        }
    };
    if let (Some(from), Some(to)) = (p.from, p.to)
        && from > to
    {
        return Err(ApiError::validation("from", "must not be after `to`"));
    }
    Ok(HistoryFilter {
        partner,
        status: p.status,
        currency: p.currency,
        from: p.from,
        to: p.to,
    })
}

fn wants_csv(req: &HttpRequest, p: &HistoryParams) -> Result<bool, ApiError> {
    match p.format {
        Some(Format::Csv) => return Ok(true),
        Some(Format::Json) => return Ok(false),
        None => {}
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(accept.contains("text/csv"))
}

/// A partner's conversions (admins: everyone's), newest first, filtered and paginated; or a
/// CSV export of every matching conversion with `Accept: text/csv` or `format=csv`.
#[utoipa::path(get, path = "/api/v1/conversions", tag = "history", operation_id = "listConversions",
    params(HistoryParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of conversions as JSON; with `format=csv` or `Accept: text/csv`, every matching conversion as CSV",
            content(
                (Page<ConversionView> = "application/json"),
                (String = "text/csv"),
            ),
            headers(("Content-Disposition" = String, description = "CSV only: `attachment; filename=\"conversions.csv\"`"))),
        (status = 403, description = "`partner_id` naming another partner (admins only)", body = Problem),
    ))]
pub async fn list(
    conversions: web::Data<Conversions>,
    user: AuthenticatedUser,
    req: HttpRequest,
    params: Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let f = filter(&user, &params)?;
    if wants_csv(&req, &params)? {
        return Ok(csv_export(conversions.into_inner(), f));
    }
    let (limit, cursor) = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .limit_and_cursor();
    let f = &f;
    let now = conversions.clock.now();
    let rows = conversions
        .reads
        .read(|db| async move { store::list(&db, f, limit, cursor, now).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let views: Vec<ConversionView> = rows.into_iter().map(ConversionView::from).collect();
    Ok(
        HttpResponse::Ok().json(Page::from_rows(views, limit, |c| Cursor {
            at: c.created_at,
            id: c.id,
        })),
    )
}

const CSV_HEADER: [&str; 16] = [
    "id",
    "partner_id",
    "status",
    "from",
    "to",
    "amount",
    "rate",
    "result",
    "rate_as_of",
    "rate_provider",
    // The names separated by spaces (a source name has none).
    "rate_sources",
    "stale_rate",
    "created_at",
    "finalizes_at",
    "finalized_at",
    "cancelled_at",
];

/// The same timestamp format as the JSON API (UTC with `Z`).
fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn csv_record(c: &ConversionView) -> [String; 16] {
    let ts = |t: &Option<DateTime<Utc>>| t.map(|t| rfc3339(&t)).unwrap_or_default();
    [
        c.id.to_string(),
        c.partner_id.to_string(),
        c.status.as_str().to_owned(),
        c.from.to_string(),
        c.to.to_string(),
        c.amount.to_plain_string(),
        c.rate.to_plain_string(),
        c.result.to_plain_string(),
        rfc3339(&c.rate_as_of),
        c.rate_provider.clone(),
        c.rate_sources.join(" "),
        c.stale_rate.to_string(),
        rfc3339(&c.created_at),
        rfc3339(&c.finalizes_at),
        ts(&c.finalized_at),
        ts(&c.cancelled_at),
    ]
}

/// Records as CSV (RFC 4180 quoting by the `csv` crate, `\n` line ends), one export chunk.
fn csv_chunk<R, F>(records: impl IntoIterator<Item = R>) -> Result<web::Bytes, csv::Error>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for record in records {
        writer.write_record(record)?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(web::Bytes::from(bytes))
}

/// Writing CSV into memory fails only on a bug; the stream ends with an error (logged).
fn export_error(e: csv::Error) -> actix_web::Error {
    tracing::error!(error = %e, "CSV export failed mid-stream");
    ApiError::Internal(e.into()).into()
}

/// Streams the export page by page (keyset), so memory stays flat however long the history.
fn csv_export(conversions: std::sync::Arc<Conversions>, f: HistoryFilter) -> HttpResponse {
    enum Next {
        Header,
        After(Option<Cursor>),
        Done,
    }
    let stream = futures_util::stream::unfold(Next::Header, move |next| {
        let conversions = conversions.clone();
        let f = f.clone();
        async move {
            match next {
                Next::Header => Some((
                    csv_chunk([CSV_HEADER]).map_err(export_error),
                    Next::After(None),
                )),
                Next::Done => None,
                Next::After(cursor) => {
                    let (f, now) = (&f, conversions.clock.now());
                    let read = conversions.reads.read(|db| async move {
                        store::list(&db, f, EXPORT_CHUNK, cursor, now).await
                    });
                    let rows = match read.await {
                        Ok(rows) => rows,
                        Err(e) => {
                            tracing::error!(error = %e, "CSV export failed mid-stream");
                            return Some((Err(ApiError::Internal(e.into()).into()), Next::Done));
                        }
                    };
                    let more = rows.len() as i64 > EXPORT_CHUNK;
                    let views: Vec<ConversionView> = rows
                        .into_iter()
                        .take(EXPORT_CHUNK as usize)
                        .map(ConversionView::from)
                        .collect();
                    let next = match (more, views.last()) {
                        (true, Some(last)) => Next::After(Some(Cursor {
                            at: last.created_at,
                            id: last.id,
                        })),
                        _ => Next::Done,
                    };
                    if views.is_empty() {
                        return None;
                    }
                    let chunk = csv_chunk(views.iter().map(csv_record)).map_err(export_error);
                    Some((chunk, next))
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"conversions.csv\"",
        ))
        .streaming(stream)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// `day` (per UTC day and source currency, the default) or `currency_pair`.
    pub group_by: Option<GroupBy>,
    /// Created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Admins only: one partner.
    pub partner_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryItem {
    /// Set when grouped by day.
    pub day: Option<NaiveDate>,
    pub from: CurrencyCode,
    /// Set when grouped by currency pair.
    pub to: Option<CurrencyCode>,
    pub count: i64,
    /// Sum of amounts in the source currency.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub total_amount: BigDecimal,
    /// Sum of results in the target currency (currency-pair grouping only).
    #[schema(value_type = Option<String>)]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub total_result: Option<BigDecimal>,
    /// What the partner's markups (and rate locks' spreads) came to, in the target currency:
    /// the sum of the conversions' `rate_details.markup_amount` (currency-pair grouping only).
    #[schema(value_type = Option<String>)]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub markup_amount: Option<BigDecimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub group_by: GroupBy,
    pub data: Vec<SummaryItem>,
}

/// Counts and totals per source currency, by day or by currency pair (cancelled conversions are
/// not counted).
#[utoipa::path(get, path = "/api/v1/conversions/summary", tag = "history", operation_id = "getConversionSummary",
    params(SummaryParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts and totals per group", body = Summary),
        (status = 403, description = "`partner_id` naming another partner (admins only)", body = Problem),
    ))]
pub async fn summary(
    conversions: web::Data<Conversions>,
    user: AuthenticatedUser,
    params: Query<SummaryParams>,
) -> Result<HttpResponse, ApiError> {
    let group_by = params.group_by.unwrap_or_default();
    let by_pair = group_by == GroupBy::CurrencyPair;
    let f = filter(
        &user,
        &HistoryParams {
            status: None,
            currency: None,
            from: params.from,
            to: params.to,
            partner_id: params.partner_id,
            format: None,
            limit: None,
            cursor: None,
        },
    )?;
    let rows = conversions
        .reads
        .read(|db| async move { store::summary(&db, f.partner, by_pair, f.from, f.to).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let data = rows
        .into_iter()
        .map(|r| SummaryItem {
            day: r.day,
            from: r.from_currency,
            to: r.to_currency,
            count: r.count,
            total_amount: money::round_to_minor_units(&r.total_amount, r.from_minor_units),
            total_result: r
                .total_result
                .map(|t| money::round_to_minor_units(&t, r.to_minor_units.unwrap_or(0))),
            markup_amount: r
                .total_markup
                .map(|t| money::round_to_minor_units(&t, r.to_minor_units.unwrap_or(0))),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Summary { group_by, data }))
}

/// The admin reports (`/reports/...`).
pub fn configure_reports(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/reports/markup").route(web::get().to(markup_report)));
}

/// How the markup report groups (always per target currency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarkupGroupBy {
    /// Per partner and currency.
    #[default]
    Partner,
    /// Per currency, all partners.
    Currency,
    /// Per UTC day and currency, all partners.
    Day,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarkupReportParams {
    /// First UTC day, included (`YYYY-MM-DD`).
    pub from: NaiveDate,
    /// Last UTC day, excluded (`YYYY-MM-DD`).
    pub to: NaiveDate,
    /// `partner` (default), `currency` or `day`.
    pub group_by: Option<MarkupGroupBy>,
    /// `csv` for CSV (same as `Accept: text/csv`).
    pub format: Option<String>,
}

/// One line of the markup report.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkupLine {
    /// Set when grouped by partner.
    pub partner_id: Option<Uuid>,
    /// Set when grouped by day.
    pub day: Option<NaiveDate>,
    /// The target currency the markup was earned in.
    pub currency: CurrencyCode,
    /// Conversions counted (cancelled ones are not).
    pub conversions: i64,
    /// The sum of their `rate_details.markup_amount`, in `currency`.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub markup_amount: BigDecimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkupReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: MarkupGroupBy,
    pub data: Vec<MarkupLine>,
}

/// What the service earned on its prices (admin): per target currency, grouped by partner, by
/// currency or by UTC day, over whole days `[from, to)`. Each total is the sum of the
/// conversions' own stored `markup_amount` to the minor unit; cancelled conversions are not
/// counted. JSON, or CSV with `format=csv` or `Accept: text/csv`.
#[utoipa::path(get, path = "/api/v1/reports/markup", tag = "history", operation_id = "getMarkupReport",
    params(MarkupReportParams), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The markup earned per group (JSON, or CSV with `format=csv`)",
            content(
                (MarkupReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`from` after `to`, or a bad parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn markup_report(
    req: HttpRequest,
    conversions: web::Data<Conversions>,
    _admin: crate::auth::AdminUser,
    params: Query<MarkupReportParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    if params.from > params.to {
        return Err(ApiError::validation("from", "must not be after `to`"));
    }
    let group_by = params.group_by.unwrap_or_default();
    let rows = conversions
        .reads
        .read(|db| async move {
            store::markup_report(
                &db,
                params.from,
                params.to,
                group_by == MarkupGroupBy::Partner,
                group_by == MarkupGroupBy::Day,
            )
            .await
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let data: Vec<MarkupLine> = rows
        .into_iter()
        .map(|r| MarkupLine {
            partner_id: r.partner_id,
            day: r.day,
            currency: r.currency,
            conversions: r.conversions,
            markup_amount: money::round_to_minor_units(&r.markup_amount, r.minor_units),
        })
        .collect();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if params.format.as_deref() == Some("csv") || accept.contains("text/csv") {
        let header_row = [
            "partner_id",
            "day",
            "currency",
            "conversions",
            "markup_amount",
        ]
        .map(str::to_owned);
        let lines = data.iter().map(|l| {
            [
                l.partner_id.map(|p| p.to_string()).unwrap_or_default(),
                l.day.map(|d| d.to_string()).unwrap_or_default(),
                l.currency.to_string(),
                l.conversions.to_string(),
                l.markup_amount.to_plain_string(),
            ]
        });
        let body = csv_chunk(std::iter::once(header_row).chain(lines))
            .map_err(|e| ApiError::Internal(e.into()))?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(body));
    }
    Ok(HttpResponse::Ok().json(MarkupReport {
        from: params.from,
        to: params.to,
        group_by,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_and_line_breaks_are_quoted_and_read_back() {
        let awkward = "ecb, \"fallback\"\nsecond line";
        let bytes = csv_chunk([CSV_HEADER.map(str::to_owned), {
            let mut row = CSV_HEADER.map(|_| "x".to_owned());
            row[9] = awkward.to_owned();
            row
        }])
        .unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("id,partner_id,status,from,to,"), "{text}");
        assert!(
            text.contains("\"ecb, \"\"fallback\"\"\nsecond line\""),
            "{text}"
        );
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][9], awkward);
        assert_eq!(rows[0].len(), CSV_HEADER.len());
    }
}

//! The history's reads of `conversions` (and its `conversion_daily_totals` rollup): the
//! filtered, keyset-paginated list behind `GET /conversions` and its CSV export, and the
//! per-currency summary behind `GET /conversions/summary`.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::ConversionRow;
use crate::auth::PartnerId;
use crate::conversions::Status;
use crate::currencies::CurrencyCode;
use crate::pagination::Cursor;

/// Filters of the history list; `partner` is `None` only for admins listing everyone.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub partner: Option<PartnerId>,
    pub status: Option<Status>,
    pub currency: Option<CurrencyCode>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One page of history, newest first, keyset-paginated (`limit + 1` rows), read month first.
///
/// `conversions` is partitioned by UTC month, and a statement over every partition costs what
/// its partitions cost, not what it returns: under the generic plans of the read sessions
/// (`db::read_session`) PostgreSQL locks every monthly partition and the Merge Append starts an
/// index scan in each one (27 for two years of history) to return 21 rows. So a page is read in
/// at most two steps:
/// 1. the UTC month the page starts in (that of the cursor, of `to`, or of `now`), with
///    everything after it: a lower time bound that prunes every older partition when the plan
///    runs. On 1 M rows over 27 partitions this statement runs 3.5x as many pages per second as
///    the one over all of them (docs/benchmarks.md, "History pages month first").
/// 2. only when that month does not fill the page, the months before it, for the rows missing.
///
/// The split is a bound on `created_at` like the others, so which rows a page holds, and their
/// order, do not depend on where it falls (nor on the partitions: `now` only chooses it): every
/// row of step 1 is newer than every row of step 2.
pub async fn list(
    db: &PgPool,
    f: &HistoryFilter,
    limit: i64,
    after: Option<Cursor>,
    now: DateTime<Utc>,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    let starts = [after.map(|c| c.at), f.to]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
    // The month of the newest instant the page may hold: `starts` is an exclusive bound.
    let split =
        crate::conversions::partitions::month_of(starts - chrono::Duration::microseconds(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
    if f.from.is_some_and(|from| from >= split) {
        return list_range(db, f, limit, after).await;
    }
    let this_month = HistoryFilter {
        from: Some(split),
        ..f.clone()
    };
    let mut rows = list_range(db, &this_month, limit, after).await?;
    let wanted = limit + 1 - rows.len() as i64;
    if wanted > 0 {
        let before = HistoryFilter {
            to: Some(f.to.map_or(split, |to| to.min(split))),
            ..f.clone()
        };
        // `limit + 1` rows are asked for in all; `list_range` adds the one.
        rows.extend(list_range(db, &before, wanted - 1, after).await?);
    }
    Ok(rows)
}

/// `limit + 1` rows of history within the filter's bounds, newest first, in one statement.
///
/// Static statements per scope (one partner with a status, one partner, all partners), so each
/// keeps a plan on its index (`conversions_partner_status_created_idx`,
/// `conversions_partner_created_idx`, `conversions_created_idx`) even when PostgreSQL
/// switches the prepared statement to a generic plan: an `$1 IS NULL OR partner_id = $1` filter
/// would lose the partner index there. The time bounds and the cursor default to infinities, not
/// to NULL, for the same reason: they stay index conditions on every page.
async fn list_range(
    db: &PgPool,
    f: &HistoryFilter,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    let currency = f.currency.as_ref().map(CurrencyCode::as_str);
    let (after_at, after_id) = (after.map(|c| c.at), after.map(|c| c.id));
    match (f.partner, f.status) {
        // One partner, one status: `conversions_partner_status_created_idx` gives that status's
        // rows in order, so a page never walks the partner's rows of other statuses.
        (Some(partner), Some(status)) => {
            sqlx::query_as!(
                ConversionRow,
                r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources
                   FROM conversions
                   WHERE partner_id = $1
                     AND status = $2
                     AND ($3::text IS NULL OR from_currency = $3 OR to_currency = $3)
                     AND created_at >= COALESCE($4, '-infinity'::timestamptz)
                     AND created_at < COALESCE($5, 'infinity'::timestamptz)
                     AND (created_at, id) < (COALESCE($6, 'infinity'::timestamptz),
                                             COALESCE($7, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $8"#,
                partner.as_uuid(),
                status.as_str(),
                currency,
                f.from,
                f.to,
                after_at,
                after_id,
                limit + 1,
            )
            .fetch_all(db)
            .await
        }
        (Some(partner), None) => {
            sqlx::query_as!(
                ConversionRow,
                r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources
                   FROM conversions
                   WHERE partner_id = $1
                     AND ($2::text IS NULL OR from_currency = $2 OR to_currency = $2)
                     AND created_at >= COALESCE($3, '-infinity'::timestamptz)
                     AND created_at < COALESCE($4, 'infinity'::timestamptz)
                     AND (created_at, id) < (COALESCE($5, 'infinity'::timestamptz),
                                             COALESCE($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $7"#,
                partner.as_uuid(),
                currency,
                f.from,
                f.to,
                after_at,
                after_id,
                limit + 1,
            )
            .fetch_all(db)
            .await
        }
        (None, _) => {
            sqlx::query_as!(
                ConversionRow,
                r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources
                   FROM conversions
                   WHERE ($1::text IS NULL OR status = $1)
                     AND ($2::text IS NULL OR from_currency = $2 OR to_currency = $2)
                     AND created_at >= COALESCE($3, '-infinity'::timestamptz)
                     AND created_at < COALESCE($4, 'infinity'::timestamptz)
                     AND (created_at, id) < (COALESCE($5, 'infinity'::timestamptz),
                                             COALESCE($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $7"#,
                f.status.map(Status::as_str),
                currency,
                f.from,
                f.to,
                after_at,
                after_id,
                limit + 1,
            )
            .fetch_all(db)
            .await
        }
    }
}

#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub day: Option<chrono::NaiveDate>,
    pub from_currency: CurrencyCode,
    pub to_currency: Option<CurrencyCode>,
    pub count: i64,
    pub total_amount: BigDecimal,
    pub total_result: Option<BigDecimal>,
    /// What the markups came to, in `to_currency` (by pair only).
    pub total_markup: Option<BigDecimal>,
    pub from_minor_units: i16,
    pub to_minor_units: Option<i16>,
}

/// Counts and totals per source currency, grouped by UTC day or by currency pair. Cancelled
/// conversions are left out: they moved no money.
///
/// Whole UTC days inside `[from, to)` come from the `conversion_daily_totals` rollup (kept by
/// triggers on `conversions`, see its migration); only the partial days at the two edges of the
/// range are read from `conversions`, each an index range of at most one day. With
///   `fs` = the first midnight at or after `from`, `fe` = the last midnight at or before `to`,
/// the range splits into `[from, min(to, fs))` (raw), days `[fs, fe)` (rollup) and
/// `[max(min(to, fs), fe), to)` (raw); when `from` and `to` fall within one day the first part
/// covers it and the other two are empty.
pub async fn summary(
    db: &PgPool,
    partner: Option<PartnerId>,
    by_pair: bool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    // One static statement per scope (one partner or all), for the same reason as `list`: each
    // keeps its index under a generic plan. The grouping is a parameter: it only shapes the
    // final aggregation of a few thousand rows at most.
    match partner {
        Some(partner) => {
            sqlx::query_as!(
                SummaryRow,
                r#"WITH b AS (
                       SELECT f, t, fs, fe, LEAST(t, fs_at) AS e1, GREATEST(LEAST(t, fs_at), fe_at) AS s2
                       FROM (SELECT COALESCE($2::timestamptz, '-infinity') AS f,
                                    COALESCE($3::timestamptz, 'infinity') AS t) AS i
                       CROSS JOIN LATERAL (
                           SELECT CASE WHEN (f AT TIME ZONE 'UTC') = date_trunc('day', f AT TIME ZONE 'UTC')
                                       THEN (f AT TIME ZONE 'UTC')::date
                                       ELSE (f AT TIME ZONE 'UTC')::date + 1 END AS fs,
                                  (t AT TIME ZONE 'UTC')::date AS fe) AS d
                       CROSS JOIN LATERAL (
                           SELECT fs::timestamp AT TIME ZONE 'UTC' AS fs_at,
                                  fe::timestamp AT TIME ZONE 'UTC' AS fe_at) AS x
                   ),
                   parts AS (
                       SELECT r.day, r.from_currency, r.to_currency, r.count, r.total_amount,
                              r.total_result, r.total_markup, r.from_minor_units, r.to_minor_units
                       FROM b JOIN conversion_daily_totals r
                         ON r.partner_id = $1 AND r.day >= b.fs AND r.day < b.fe
                       UNION ALL
                       SELECT (c.created_at AT TIME ZONE 'UTC')::date, c.from_currency, c.to_currency,
                              1, c.amount, c.result, c.markup_amount, c.from_minor_units, c.to_minor_units
                       FROM b JOIN conversions c
                         ON c.partner_id = $1 AND c.created_at >= b.f AND c.created_at < b.e1
                       WHERE c.status <> 'cancelled'
                       UNION ALL
                       SELECT (c.created_at AT TIME ZONE 'UTC')::date, c.from_currency, c.to_currency,
                              1, c.amount, c.result, c.markup_amount, c.from_minor_units, c.to_minor_units
                       FROM b JOIN conversions c
                         ON c.partner_id = $1 AND c.created_at >= b.s2 AND c.created_at < b.t
                       WHERE c.status <> 'cancelled'
                   )
                   SELECT CASE WHEN $4 THEN NULL ELSE day END AS "day?",
                          from_currency AS "from_currency!: CurrencyCode",
                          CASE WHEN $4 THEN to_currency END AS "to_currency?: CurrencyCode",
                          sum(count)::int8 AS "count!", sum(total_amount) AS "total_amount!",
                          CASE WHEN $4 THEN sum(total_result) END AS "total_result?",
                          CASE WHEN $4 THEN sum(total_markup) END AS "total_markup?",
                          max(from_minor_units) AS "from_minor_units!",
                          CASE WHEN $4 THEN max(to_minor_units) END AS "to_minor_units?"
                   FROM parts
                   GROUP BY 1, 2, 3
                   HAVING sum(count) > 0
                   ORDER BY 1 DESC NULLS LAST, 2, 3"#,
                partner.as_uuid(),
                from,
                to,
                by_pair,
            )
            .fetch_all(db)
            .await
        }
        None => {
            sqlx::query_as!(
                SummaryRow,
                r#"WITH b AS (
                       SELECT f, t, fs, fe, LEAST(t, fs_at) AS e1, GREATEST(LEAST(t, fs_at), fe_at) AS s2
                       FROM (SELECT COALESCE($1::timestamptz, '-infinity') AS f,
                                    COALESCE($2::timestamptz, 'infinity') AS t) AS i
                       CROSS JOIN LATERAL (
                           SELECT CASE WHEN (f AT TIME ZONE 'UTC') = date_trunc('day', f AT TIME ZONE 'UTC')
                                       THEN (f AT TIME ZONE 'UTC')::date
                                       ELSE (f AT TIME ZONE 'UTC')::date + 1 END AS fs,
                                  (t AT TIME ZONE 'UTC')::date AS fe) AS d
                       CROSS JOIN LATERAL (
                           SELECT fs::timestamp AT TIME ZONE 'UTC' AS fs_at,
                                  fe::timestamp AT TIME ZONE 'UTC' AS fe_at) AS x
                   ),
                   parts AS (
                       SELECT r.day, r.from_currency, r.to_currency, r.count, r.total_amount,
                              r.total_result, r.total_markup, r.from_minor_units, r.to_minor_units
                       FROM b JOIN conversion_daily_totals r ON r.day >= b.fs AND r.day < b.fe
                       UNION ALL
                       SELECT (c.created_at AT TIME ZONE 'UTC')::date, c.from_currency, c.to_currency,
                              1, c.amount, c.result, c.markup_amount, c.from_minor_units, c.to_minor_units
                       FROM b JOIN conversions c ON c.created_at >= b.f AND c.created_at < b.e1
                       WHERE c.status <> 'cancelled'
                       UNION ALL
                       SELECT (c.created_at AT TIME ZONE 'UTC')::date, c.from_currency, c.to_currency,
                              1, c.amount, c.result, c.markup_amount, c.from_minor_units, c.to_minor_units
                       FROM b JOIN conversions c ON c.created_at >= b.s2 AND c.created_at < b.t
                       WHERE c.status <> 'cancelled'
                   )
                   SELECT CASE WHEN $3 THEN NULL ELSE day END AS "day?",
                          from_currency AS "from_currency!: CurrencyCode",
                          CASE WHEN $3 THEN to_currency END AS "to_currency?: CurrencyCode",
                          sum(count)::int8 AS "count!", sum(total_amount) AS "total_amount!",
                          CASE WHEN $3 THEN sum(total_result) END AS "total_result?",
                          CASE WHEN $3 THEN sum(total_markup) END AS "total_markup?",
                          max(from_minor_units) AS "from_minor_units!",
                          CASE WHEN $3 THEN max(to_minor_units) END AS "to_minor_units?"
                   FROM parts
                   GROUP BY 1, 2, 3
                   HAVING sum(count) > 0
                   ORDER BY 1 DESC NULLS LAST, 2, 3"#,
                from,
                to,
                by_pair,
            )
            .fetch_all(db)
            .await
        }
    }
}

/// One line of the markup report: conversions and what their markups came to, in one target
/// currency, for one partner, one day or all (as grouped).
#[derive(Debug, Clone)]
pub struct MarkupRow {
    pub partner_id: Option<Uuid>,
    pub day: Option<chrono::NaiveDate>,
    pub currency: CurrencyCode,
    pub conversions: i64,
    pub markup_amount: BigDecimal,
    pub minor_units: i16,
}

/// The markup earned on whole UTC days `[from, to)`, per target currency, grouped by partner
/// (`by_partner`), by day (`by_day`) or neither. Read from the `conversion_daily_totals` rollup
/// alone: its triggers keep it exact in every writer's transaction (cancelled conversions
/// leave it), so the report is the sum of the conversions' own `markup_amount`.
pub async fn markup_report(
    db: &PgPool,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    by_partner: bool,
    by_day: bool,
) -> Result<Vec<MarkupRow>, sqlx::Error> {
    sqlx::query_as!(
        MarkupRow,
        r#"SELECT CASE WHEN $3 THEN partner_id END AS "partner_id?",
                  CASE WHEN $4 THEN day END AS "day?",
                  to_currency AS "currency!: CurrencyCode",
                  sum(count)::int8 AS "conversions!", sum(total_markup) AS "markup_amount!",
                  max(to_minor_units) AS "minor_units!"
           FROM conversion_daily_totals
           WHERE day >= $1 AND day < $2
           GROUP BY 1, 2, 3
           HAVING sum(count) <> 0 OR sum(total_markup) <> 0
           ORDER BY 2 NULLS FIRST, 1 NULLS FIRST, 3"#,
        from,
        to,
        by_partner,
        by_day,
    )
    .fetch_all(db)
    .await
}

//! SQL for conversions and idempotency keys.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::service::Status;
use crate::currencies::CurrencyCode;
use crate::pagination::Cursor;

#[derive(Debug, Clone)]
pub struct ConversionRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub from_currency: CurrencyCode,
    pub to_currency: CurrencyCode,
    pub amount: BigDecimal,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
    pub rate: BigDecimal,
    pub result: BigDecimal,
    pub rate_as_of: DateTime<Utc>,
    pub rate_provider: String,
    pub from_quote_id: Option<i64>,
    pub to_quote_id: Option<i64>,
    pub stale_rate: bool,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub finalizes_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The rate lock converted on, if any.
    pub quote_id: Option<Uuid>,
}

pub async fn insert(conn: &mut PgConnection, c: &ConversionRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
             rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at, finalizes_at,
             from_minor_units, to_minor_units, quote_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'temporary', $13, $14, $15, $16, $17)",
        c.id,
        c.partner_id,
        c.from_currency.as_str(),
        c.to_currency.as_str(),
        &c.amount,
        &c.rate,
        &c.result,
        c.rate_as_of,
        &c.rate_provider,
        c.from_quote_id,
        c.to_quote_id,
        c.stale_rate,
        c.created_at,
        c.finalizes_at,
        c.from_minor_units,
        c.to_minor_units,
        c.quote_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims an idempotency key for a new conversion. Returns `None` when the key was free (now
/// taken by `conversion_id`), or the existing `(request_hash, conversion_id)`. A concurrent
/// request with the same key waits on the unique index until the first commits.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    partner: Uuid,
    key: &str,
    request_hash: &[u8],
    conversion_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Option<(Vec<u8>, Uuid)>, sqlx::Error> {
    // An expired key is free again.
    sqlx::query!(
        "DELETE FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2 AND expires_at <= $3",
        partner,
        key,
        now,
    )
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query!(
        "INSERT INTO conversion_idempotency_keys (partner_id, key, request_hash, conversion_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partner_id, key) DO NOTHING",
        partner,
        key,
        request_hash,
        conversion_id,
        now,
        expires_at,
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let existing = sqlx::query!(
        "SELECT request_hash, conversion_id FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2",
        partner,
        key,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(existing.map(|row| (row.request_hash, row.conversion_id)))
}

pub async fn find(db: &PgPool, id: Uuid) -> Result<Option<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id
           FROM conversions WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// Cancels a temporary conversion of `partner` whose holding period has not ended at `now`.
/// The holding period is checked in the same statement as the status, so a late finalize job
/// does not stretch the window: once `finalizes_at` has passed the conversion belongs to
/// finalize, even before the job has run. The condition on `status` makes cancel and finalize
/// mutually exclusive under the row lock, so exactly one of them wins.
pub async fn cancel(
    db: &PgPool,
    id: Uuid,
    partner: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"UPDATE conversions SET status = 'cancelled', cancelled_at = $3
           WHERE id = $1 AND partner_id = $2 AND status = 'temporary' AND finalizes_at > $3
           RETURNING id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id"#,
        id,
        partner,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Marks up to `batch` due temporary conversions permanent; returns how many. Rows locked by a
/// concurrent cancel or another finalizer are skipped and picked up by the next batch.
pub async fn finalize_due(db: &PgPool, now: DateTime<Utc>, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE conversions SET status = 'permanent', finalized_at = $1
         WHERE id IN (
             SELECT id FROM conversions
             WHERE status = 'temporary' AND finalizes_at <= $1
             ORDER BY finalizes_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
           AND status = 'temporary'",
        now,
        batch,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete_expired_idempotency_keys(
    db: &PgPool,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM conversion_idempotency_keys WHERE expires_at <= $1",
        now
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Filters of the history list; `partner` is `None` only for admins listing everyone.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub partner: Option<Uuid>,
    pub status: Option<String>,
    pub currency: Option<CurrencyCode>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One page of history, newest first, keyset-paginated (`limit + 1` rows).
///
/// Two static statements, one per partner and one across partners, so each keeps a plan on its
/// index (`conversions_partner_created_idx`, `conversions_created_idx`) even when PostgreSQL
/// switches the prepared statement to a generic plan: an `$1 IS NULL OR partner_id = $1` filter
/// would lose the partner index there. The time bounds and the cursor default to infinities, not
/// to NULL, for the same reason: they stay index conditions on every page.
pub async fn list(
    db: &PgPool,
    f: &HistoryFilter,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    let currency = f.currency.as_ref().map(CurrencyCode::as_str);
    let (after_at, after_id) = (after.map(|c| c.at), after.map(|c| c.id));
    match f.partner {
        Some(partner) => {
            sqlx::query_as!(
                ConversionRow,
                r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id
                   FROM conversions
                   WHERE partner_id = $1
                     AND ($2::text IS NULL OR status = $2)
                     AND ($3::text IS NULL OR from_currency = $3 OR to_currency = $3)
                     AND created_at >= COALESCE($4, '-infinity'::timestamptz)
                     AND created_at < COALESCE($5, 'infinity'::timestamptz)
                     AND (created_at, id) < (COALESCE($6, 'infinity'::timestamptz),
                                             COALESCE($7, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $8"#,
                partner,
                f.status.as_deref(),
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
        None => {
            sqlx::query_as!(
                ConversionRow,
                r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id
                   FROM conversions
                   WHERE ($1::text IS NULL OR status = $1)
                     AND ($2::text IS NULL OR from_currency = $2 OR to_currency = $2)
                     AND created_at >= COALESCE($3, '-infinity'::timestamptz)
                     AND created_at < COALESCE($4, 'infinity'::timestamptz)
                     AND (created_at, id) < (COALESCE($5, 'infinity'::timestamptz),
                                             COALESCE($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $7"#,
                f.status.as_deref(),
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
    pub from_minor_units: i16,
    pub to_minor_units: Option<i16>,
}

/// Counts and totals per source currency, grouped by UTC day or by currency pair. Cancelled
/// conversions are left out: they moved no money.
pub async fn summary(
    db: &PgPool,
    partner: Option<Uuid>,
    by_pair: bool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    // One static statement per grouping and per scope (one partner or all), for the same reason
    // as `list`: each keeps its index under a generic plan.
    match (by_pair, partner) {
        (true, Some(partner)) => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT NULL::date AS "day?", from_currency AS "from_currency!: CurrencyCode",
                          to_currency AS "to_currency?: CurrencyCode", count(*) AS "count!",
                          sum(amount) AS "total_amount!", sum(result) AS "total_result?",
                          max(from_minor_units) AS "from_minor_units!", max(to_minor_units) AS "to_minor_units?"
                   FROM conversions
                   WHERE partner_id = $1 AND status <> 'cancelled'
                     AND created_at >= COALESCE($2, '-infinity'::timestamptz)
                     AND created_at < COALESCE($3, 'infinity'::timestamptz)
                   GROUP BY from_currency, to_currency
                   ORDER BY from_currency, to_currency"#,
                partner,
                from,
                to,
            )
            .fetch_all(db)
            .await
        }
        (true, None) => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT NULL::date AS "day?", from_currency AS "from_currency!: CurrencyCode",
                          to_currency AS "to_currency?: CurrencyCode", count(*) AS "count!",
                          sum(amount) AS "total_amount!", sum(result) AS "total_result?",
                          max(from_minor_units) AS "from_minor_units!", max(to_minor_units) AS "to_minor_units?"
                   FROM conversions
                   WHERE status <> 'cancelled'
                     AND created_at >= COALESCE($1, '-infinity'::timestamptz)
                     AND created_at < COALESCE($2, 'infinity'::timestamptz)
                   GROUP BY from_currency, to_currency
                   ORDER BY from_currency, to_currency"#,
                from,
                to,
            )
            .fetch_all(db)
            .await
        }
        (false, Some(partner)) => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT (created_at AT TIME ZONE 'UTC')::date AS "day?",
                          from_currency AS "from_currency!: CurrencyCode",
                          NULL::text AS "to_currency?: CurrencyCode", count(*) AS "count!",
                          sum(amount) AS "total_amount!", NULL::numeric AS "total_result?",
                          max(from_minor_units) AS "from_minor_units!", NULL::smallint AS "to_minor_units?"
                   FROM conversions
                   WHERE partner_id = $1 AND status <> 'cancelled'
                     AND created_at >= COALESCE($2, '-infinity'::timestamptz)
                     AND created_at < COALESCE($3, 'infinity'::timestamptz)
                   GROUP BY 1, from_currency
                   ORDER BY 1 DESC, from_currency"#,
                partner,
                from,
                to,
            )
            .fetch_all(db)
            .await
        }
        (false, None) => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT (created_at AT TIME ZONE 'UTC')::date AS "day?",
                          from_currency AS "from_currency!: CurrencyCode",
                          NULL::text AS "to_currency?: CurrencyCode", count(*) AS "count!",
                          sum(amount) AS "total_amount!", NULL::numeric AS "total_result?",
                          max(from_minor_units) AS "from_minor_units!", NULL::smallint AS "to_minor_units?"
                   FROM conversions
                   WHERE status <> 'cancelled'
                     AND created_at >= COALESCE($1, '-infinity'::timestamptz)
                     AND created_at < COALESCE($2, 'infinity'::timestamptz)
                   GROUP BY 1, from_currency
                   ORDER BY 1 DESC, from_currency"#,
                from,
                to,
            )
            .fetch_all(db)
            .await
        }
    }
}

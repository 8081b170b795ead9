//! SQL for conversions and idempotency keys.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::currencies::CurrencyCode;
use crate::pagination::Cursor;

#[derive(Debug, Clone, sqlx::FromRow)]
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
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub finalizes_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The rate lock converted on, if any.
    pub quote_id: Option<Uuid>,
}

pub const COLUMNS: &str = "id, partner_id, from_currency, to_currency, amount, from_minor_units, to_minor_units, rate, result, rate_as_of, rate_provider, \
     from_quote_id, to_quote_id, stale_rate, status, created_at, finalizes_at, finalized_at, cancelled_at, quote_id";

pub async fn insert(conn: &mut PgConnection, c: &ConversionRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
             rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at, finalizes_at,
             from_minor_units, to_minor_units, quote_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'temporary', $13, $14, $15, $16, $17)",
    )
    .bind(c.id)
    .bind(c.partner_id)
    .bind(c.from_currency)
    .bind(c.to_currency)
    .bind(&c.amount)
    .bind(&c.rate)
    .bind(&c.result)
    .bind(c.rate_as_of)
    .bind(&c.rate_provider)
    .bind(c.from_quote_id)
    .bind(c.to_quote_id)
    .bind(c.stale_rate)
    .bind(c.created_at)
    .bind(c.finalizes_at)
    .bind(c.from_minor_units)
    .bind(c.to_minor_units)
    .bind(c.quote_id)
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
    sqlx::query(
        "DELETE FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2 AND expires_at <= $3",
    )
    .bind(partner)
    .bind(key)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO conversion_idempotency_keys (partner_id, key, request_hash, conversion_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partner_id, key) DO NOTHING",
    )
    .bind(partner)
    .bind(key)
    .bind(request_hash)
    .bind(conversion_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let existing: Option<(Vec<u8>, Uuid)> = sqlx::query_as(
        "SELECT request_hash, conversion_id FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2",
    )
    .bind(partner)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(existing)
}

pub async fn find(db: &PgPool, id: Uuid) -> Result<Option<ConversionRow>, sqlx::Error> {
    sqlx::query_as::<_, ConversionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversions WHERE id = $1"
    )))
    .bind(id)
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
    sqlx::query_as::<_, ConversionRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE conversions SET status = 'cancelled', cancelled_at = $3
         WHERE id = $1 AND partner_id = $2 AND status = 'temporary' AND finalizes_at > $3
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(partner)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Marks up to `batch` due temporary conversions permanent; returns how many. Rows locked by a
/// concurrent cancel or another finalizer are skipped and picked up by the next batch.
pub async fn finalize_due(db: &PgPool, now: DateTime<Utc>, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE conversions SET status = 'permanent', finalized_at = $1
         WHERE id IN (
             SELECT id FROM conversions
             WHERE status = 'temporary' AND finalizes_at <= $1
             ORDER BY finalizes_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
           AND status = 'temporary'",
    )
    .bind(now)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete_expired_idempotency_keys(
    db: &PgPool,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM conversion_idempotency_keys WHERE expires_at <= $1")
        .bind(now)
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
pub async fn list(
    db: &PgPool,
    f: &HistoryFilter,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    sqlx::query_as::<_, ConversionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversions
         WHERE ($1::uuid IS NULL OR partner_id = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR from_currency = $3 OR to_currency = $3)
           AND ($4::timestamptz IS NULL OR created_at >= $4)
           AND ($5::timestamptz IS NULL OR created_at < $5)
           AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
         ORDER BY created_at DESC, id DESC
         LIMIT $8"
    )))
    .bind(f.partner)
    .bind(f.status.as_deref())
    .bind(f.currency)
    .bind(f.from)
    .bind(f.to)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
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
    let sql = if by_pair {
        "SELECT NULL::date AS day, from_currency, to_currency, count(*) AS count,
                sum(amount) AS total_amount, sum(result) AS total_result,
                max(from_minor_units) AS from_minor_units, max(to_minor_units) AS to_minor_units
         FROM conversions
         WHERE ($1::uuid IS NULL OR partner_id = $1) AND status <> 'cancelled'
           AND ($2::timestamptz IS NULL OR created_at >= $2)
           AND ($3::timestamptz IS NULL OR created_at < $3)
         GROUP BY from_currency, to_currency
         ORDER BY from_currency, to_currency"
    } else {
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, from_currency, NULL::text AS to_currency,
                count(*) AS count, sum(amount) AS total_amount, NULL::numeric AS total_result,
                max(from_minor_units) AS from_minor_units, NULL::smallint AS to_minor_units
         FROM conversions
         WHERE ($1::uuid IS NULL OR partner_id = $1) AND status <> 'cancelled'
           AND ($2::timestamptz IS NULL OR created_at >= $2)
           AND ($3::timestamptz IS NULL OR created_at < $3)
         GROUP BY 1, from_currency
         ORDER BY 1 DESC, from_currency"
    };
    sqlx::query_as::<_, SummaryRow>(sql)
        .bind(partner)
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await
}

//! SQL for quotes.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::Lock;
use crate::auth::PartnerId;
use crate::currencies::CurrencyCode;

#[derive(Debug, Clone)]
pub struct QuoteRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub from_currency: CurrencyCode,
    pub to_currency: CurrencyCode,
    pub amount: Option<BigDecimal>,
    pub result: Option<BigDecimal>,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
    pub reference_rate: BigDecimal,
    pub spread_bps: i32,
    /// The partner's markup within `spread_bps`.
    pub markup_bps: i32,
    pub rate: BigDecimal,
    pub rate_provider: String,
    pub reference_as_of: DateTime<Utc>,
    pub from_quote_id: Option<i64>,
    pub to_quote_id: Option<i64>,
    pub stale_rate: bool,
    pub lock: Lock,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The sources whose values made the reference rate (empty for a quote made before this
    /// was recorded).
    pub rate_sources: Vec<String>,
}

pub async fn insert(
    conn: &mut PgConnection,
    q: &QuoteRow,
    notional: Option<&BigDecimal>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO quotes (id, partner_id, from_currency, to_currency, amount, result,
             from_minor_units, to_minor_units, reference_rate, spread_bps, rate, rate_provider,
             reference_as_of, from_quote_id, to_quote_id, stale_rate, lock, created_at, expires_at,
             notional, markup_bps, rate_sources)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22)",
        q.id,
        q.partner_id,
        q.from_currency.as_str(),
        q.to_currency.as_str(),
        q.amount.as_ref(),
        q.result.as_ref(),
        q.from_minor_units,
        q.to_minor_units,
        &q.reference_rate,
        q.spread_bps,
        &q.rate,
        &q.rate_provider,
        q.reference_as_of,
        q.from_quote_id,
        q.to_quote_id,
        q.stale_rate,
        q.lock.as_str(),
        q.created_at,
        q.expires_at,
        notional,
        q.markup_bps,
        &q.rate_sources,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A partner's rate locks that are still open (redeemable, unused, unexpired).
#[derive(Debug, Clone)]
pub struct OpenLocks {
    pub count: i64,
    /// Their notional, summed (in `quotes.notional_currency`).
    pub notional: BigDecimal,
    /// When the first of them expires.
    pub first_expiry: Option<DateTime<Utc>>,
}

/// Serialises the creation of one partner's locks until the transaction ends, so that the
/// count read by [`open_locks`] is still true when the new lock is inserted.
pub async fn lock_partner_locks(
    conn: &mut PgConnection,
    partner: PartnerId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('quotes.open_locks:' || $1::uuid::text, 0))",
        partner.as_uuid(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The partner's open locks at `now`.
pub async fn open_locks(
    conn: &mut PgConnection,
    partner: PartnerId,
    now: DateTime<Utc>,
) -> Result<OpenLocks, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "count!", coalesce(sum(notional), 0) AS "notional!",
                  min(expires_at) AS first_expiry
           FROM quotes
           WHERE partner_id = $1 AND lock <> 'none' AND used_at IS NULL AND expires_at > $2"#,
        partner.as_uuid(),
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(OpenLocks {
        count: row.count,
        notional: row.notional,
        first_expiry: row.first_expiry,
    })
}

/// A partner's quote; another partner's is as absent as a missing one.
pub async fn find(
    db: &PgPool,
    id: Uuid,
    partner: PartnerId,
) -> Result<Option<QuoteRow>, sqlx::Error> {
    sqlx::query_as!(
        QuoteRow,
        r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, result, from_minor_units,
                  to_minor_units, reference_rate, spread_bps, markup_bps, rate, rate_provider, reference_as_of,
                  from_quote_id, to_quote_id, stale_rate, lock AS "lock: Lock", created_at,
                  expires_at, used_at, rate_sources
           FROM quotes WHERE id = $1 AND partner_id = $2"#,
        id,
        partner.as_uuid(),
    )
    .fetch_optional(db)
    .await
}

/// A partner's quotes among `ids`, locked until the caller's transaction ends so that two
/// conversions cannot both use a single-use quote.
pub async fn lock_for_use(
    conn: &mut PgConnection,
    ids: &[Uuid],
    partner: PartnerId,
) -> Result<Vec<QuoteRow>, sqlx::Error> {
    sqlx::query_as!(
        QuoteRow,
        r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, result, from_minor_units,
                  to_minor_units, reference_rate, spread_bps, markup_bps, rate, rate_provider, reference_as_of,
                  from_quote_id, to_quote_id, stale_rate, lock AS "lock: Lock", created_at,
                  expires_at, used_at, rate_sources
           FROM quotes WHERE id = ANY($1) AND partner_id = $2 ORDER BY id FOR UPDATE"#,
        ids,
        partner.as_uuid(),
    )
    .fetch_all(conn)
    .await
}

/// Marks fixed-amount quotes used (in the converting transaction).
pub async fn mark_used(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE quotes SET used_at = $2 WHERE id = ANY($1) AND amount IS NOT NULL AND used_at IS NULL",
        ids,
        now,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Quotes holding a rate right now: locked, unexpired, not used up.
pub async fn count_active(db: &PgPool, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM quotes
           WHERE lock <> 'none' AND expires_at > $1 AND used_at IS NULL"#,
        now,
    )
    .fetch_one(db)
    .await
}

/// Stamps up to `batch` locked quotes whose lock has ended at `now` (and was not stamped yet)
/// and returns them. Rows locked by a concurrent conversion or another run are skipped and
/// picked up by the next batch.
pub async fn record_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<QuoteRow>, sqlx::Error> {
    sqlx::query_as!(
        QuoteRow,
        r#"UPDATE quotes SET expiry_recorded_at = $1
           WHERE id IN (
               SELECT id FROM quotes
               WHERE lock <> 'none' AND expiry_recorded_at IS NULL AND expires_at <= $1
               ORDER BY expires_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED)
           RETURNING id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, result, from_minor_units,
                  to_minor_units, reference_rate, spread_bps, markup_bps, rate, rate_provider, reference_as_of,
                  from_quote_id, to_quote_id, stale_rate, lock AS "lock: Lock", created_at,
                  expires_at, used_at, rate_sources"#,
        now,
        batch,
    )
    .fetch_all(conn)
    .await
}

/// Deletes at most `limit` quotes that expired before `before`, whose expiry (for a lock) is
/// recorded and that no conversion was made on; returns how many. A conversion keeps its quote
/// for as long as the conversion exists: the price it was made at is part of its record (and
/// the foreign key would refuse the delete anyway).
pub async fn delete_expired_before(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM quotes WHERE id IN (
             SELECT q.id FROM quotes q
             WHERE q.expires_at < $1
               AND (q.lock = 'none' OR q.expiry_recorded_at IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.quote_id = q.id)
             LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

//! SQL for partner pricing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{MarkupSchedule, PricingChange};
use crate::auth::PartnerId;
use crate::currency_code::CurrencyCode;

/// A partner's own schedule and its last change.
#[derive(Debug, Clone)]
pub struct StoredSchedule {
    pub schedule: MarkupSchedule,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Uuid,
}

/// The partner's own schedule, if an admin set one.
pub async fn find(db: &PgPool, partner: PartnerId) -> Result<Option<StoredSchedule>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    find_in(&mut conn, partner, false).await
}

async fn find_in(
    conn: &mut PgConnection,
    partner: PartnerId,
    for_update: bool,
) -> Result<Option<StoredSchedule>, sqlx::Error> {
    let row = if for_update {
        sqlx::query!(
            "SELECT markup_bps, updated_at, updated_by FROM partner_pricing
             WHERE partner_id = $1 FOR UPDATE",
            partner.as_uuid(),
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.markup_bps, r.updated_at, r.updated_by))
    } else {
        sqlx::query!(
            "SELECT markup_bps, updated_at, updated_by FROM partner_pricing WHERE partner_id = $1",
            partner.as_uuid(),
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.markup_bps, r.updated_at, r.updated_by))
    };
    let Some((markup_bps, updated_at, updated_by)) = row else {
        return Ok(None);
    };
    let pairs = sqlx::query!(
        r#"SELECT from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", markup_bps
           FROM partner_pair_markups WHERE partner_id = $1"#,
        partner.as_uuid(),
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| ((r.from_currency, r.to_currency), bps(r.markup_bps)))
    .collect::<BTreeMap<_, _>>();
    Ok(Some(StoredSchedule {
        schedule: MarkupSchedule {
            markup_bps: bps(markup_bps),
            pairs,
            own: true,
        },
        updated_at,
        updated_by,
    }))
}

/// The schema keeps a markup within 0..=9999.
fn bps(stored: i32) -> u32 {
    u32::try_from(stored).unwrap_or_default()
}

/// Replaces the partner's schedule with `schedule` and records the change, in one transaction
/// (the partner's row is locked, so two admins' changes are recorded one after the other).
pub async fn replace(
    db: &PgPool,
    partner: PartnerId,
    schedule: &MarkupSchedule,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    // Serialises the first schedule of a partner too (there is no row to lock yet).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('partner_pricing:' || $1::uuid::text, 0))",
        partner.as_uuid(),
    )
    .execute(&mut *tx)
    .await?;
    let previous = find_in(&mut tx, partner, true).await?;
    let markup_bps = i32::try_from(schedule.markup_bps).unwrap_or(i32::MAX);
    sqlx::query!(
        "INSERT INTO partner_pricing (partner_id, markup_bps, updated_at, updated_by)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (partner_id) DO UPDATE
             SET markup_bps = EXCLUDED.markup_bps, updated_at = EXCLUDED.updated_at,
                 updated_by = EXCLUDED.updated_by",
        partner.as_uuid(),
        markup_bps,
        now,
        by,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM partner_pair_markups WHERE partner_id = $1",
        partner.as_uuid()
    )
    .execute(&mut *tx)
    .await?;
    let froms: Vec<String> = schedule.pairs.keys().map(|(f, _)| f.to_string()).collect();
    let tos: Vec<String> = schedule.pairs.keys().map(|(_, t)| t.to_string()).collect();
    let values: Vec<i32> = schedule
        .pairs
        .values()
        .map(|b| i32::try_from(*b).unwrap_or(i32::MAX))
        .collect();
    sqlx::query!(
        "INSERT INTO partner_pair_markups (partner_id, from_currency, to_currency, markup_bps)
         SELECT $1, f, t, b FROM UNNEST($2::text[], $3::text[], $4::int4[]) AS p(f, t, b)",
        partner.as_uuid(),
        &froms,
        &tos,
        &values,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO partner_pricing_changes (partner_id, changed_by, changed_at, previous, current)
         VALUES ($1, $2, $3, $4, $5)",
        partner.as_uuid(),
        by,
        now,
        previous.map(|p| p.schedule.as_json()),
        schedule.as_json(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The partner's pricing changes, newest first.
pub async fn changes(
    db: &PgPool,
    partner: PartnerId,
    limit: i64,
) -> Result<Vec<PricingChange>, sqlx::Error> {
    sqlx::query_as!(
        PricingChange,
        "SELECT id, partner_id, changed_by, changed_at, previous, current
         FROM partner_pricing_changes WHERE partner_id = $1 ORDER BY id DESC LIMIT $2",
        partner.as_uuid(),
        limit,
    )
    .fetch_all(db)
    .await
}

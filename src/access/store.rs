//! SQL for `partner_limits`. Nothing outside `access` touches it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The partner's own limit, if an admin set one.
pub async fn own_limit(db: &PgPool, partner: Uuid) -> Result<Option<u32>, sqlx::Error> {
    let limit = sqlx::query_scalar!(
        "SELECT requests_per_minute FROM partner_limits WHERE partner_id = $1",
        partner
    )
    .fetch_optional(db)
    .await?;
    Ok(limit.and_then(|l| u32::try_from(l).ok()))
}

/// Sets the partner's own limit, or removes it (`None`: the default applies again).
pub async fn set_own_limit(
    db: &PgPool,
    partner: Uuid,
    limit: Option<u32>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    match limit {
        Some(limit) => {
            sqlx::query!(
                "INSERT INTO partner_limits (partner_id, requests_per_minute, updated_at)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (partner_id) DO UPDATE
                 SET requests_per_minute = EXCLUDED.requests_per_minute,
                     updated_at = EXCLUDED.updated_at",
                partner,
                i32::try_from(limit).unwrap_or(i32::MAX),
                now,
            )
            .execute(db)
            .await?;
        }
        None => {
            sqlx::query!("DELETE FROM partner_limits WHERE partner_id = $1", partner)
                .execute(db)
                .await?;
        }
    }
    Ok(())
}

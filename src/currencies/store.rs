//! SQL for the `currencies` table.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::CurrencyCode;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CurrencyRow {
    pub code: CurrencyCode,
    pub name: String,
    pub minor_units: i16,
    pub numeric_code: Option<i16>,
    pub is_iso: bool,
    pub enabled: bool,
    pub retired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewCurrency<'a> {
    pub code: CurrencyCode,
    pub name: &'a str,
    pub minor_units: i16,
    pub numeric_code: Option<i16>,
    pub is_iso: bool,
    pub enabled: bool,
    pub retired: bool,
}

pub async fn insert(
    db: &PgPool,
    c: &NewCurrency<'_>,
    now: DateTime<Utc>,
) -> Result<CurrencyRow, sqlx::Error> {
    sqlx::query_as!(
        CurrencyRow,
        r#"INSERT INTO currencies (code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8::timestamptz END, $8, $8)
           RETURNING code AS "code: CurrencyCode", name, minor_units, numeric_code, is_iso, enabled,
                     retired_at, created_at, updated_at"#,
        c.code.as_str(),
        c.name,
        c.minor_units,
        c.numeric_code,
        c.is_iso,
        c.enabled,
        c.retired,
        now,
    )
    .fetch_one(db)
    .await
}

/// Inserts unless the code exists; returns whether a row was added (idempotent seeding).
pub async fn insert_if_absent(
    db: &PgPool,
    c: &NewCurrency<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO currencies (code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8::timestamptz END, $8, $8)
         ON CONFLICT (code) DO NOTHING",
        c.code.as_str(),
        c.name,
        c.minor_units,
        c.numeric_code,
        c.is_iso,
        c.enabled,
        c.retired,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(db: &PgPool, code: CurrencyCode) -> Result<Option<CurrencyRow>, sqlx::Error> {
    sqlx::query_as!(
        CurrencyRow,
        r#"SELECT code AS "code: CurrencyCode", name, minor_units, numeric_code, is_iso, enabled,
                  retired_at, created_at, updated_at
           FROM currencies WHERE code = $1"#,
        code.as_str(),
    )
    .fetch_optional(db)
    .await
}

pub async fn list(db: &PgPool, include_inactive: bool) -> Result<Vec<CurrencyRow>, sqlx::Error> {
    sqlx::query_as!(
        CurrencyRow,
        r#"SELECT code AS "code: CurrencyCode", name, minor_units, numeric_code, is_iso, enabled,
                  retired_at, created_at, updated_at
           FROM currencies
           WHERE $1 OR (enabled AND retired_at IS NULL)
           ORDER BY code"#,
        include_inactive,
    )
    .fetch_all(db)
    .await
}

pub async fn update(
    db: &PgPool,
    code: CurrencyCode,
    name: Option<&str>,
    enabled: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Option<CurrencyRow>, sqlx::Error> {
    // Enabling a retired currency brings it back (clears retired_at).
    sqlx::query_as!(
        CurrencyRow,
        r#"UPDATE currencies SET
               name = COALESCE($2, name),
               enabled = COALESCE($3, enabled),
               retired_at = CASE WHEN $3 IS TRUE THEN NULL ELSE retired_at END,
               updated_at = $4
           WHERE code = $1
           RETURNING code AS "code: CurrencyCode", name, minor_units, numeric_code, is_iso, enabled,
                     retired_at, created_at, updated_at"#,
        code.as_str(),
        name,
        enabled,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Deletes the row; fails with a foreign-key violation when history references it.
pub async fn delete(db: &PgPool, code: CurrencyCode) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM currencies WHERE code = $1", code.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn retire(
    db: &PgPool,
    code: CurrencyCode,
    now: DateTime<Utc>,
) -> Result<Option<CurrencyRow>, sqlx::Error> {
    sqlx::query_as!(
        CurrencyRow,
        r#"UPDATE currencies SET enabled = false, retired_at = COALESCE(retired_at, $2), updated_at = $2
           WHERE code = $1
           RETURNING code AS "code: CurrencyCode", name, minor_units, numeric_code, is_iso, enabled,
                     retired_at, created_at, updated_at"#,
        code.as_str(),
        now,
    )
    .fetch_optional(db)
    .await
}

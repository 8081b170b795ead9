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

const COLUMNS: &str =
    "code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at";

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
    sqlx::query_as::<_, CurrencyRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO currencies (code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8 END, $8, $8)
         RETURNING {COLUMNS}"
    )))
    .bind(c.code)
    .bind(c.name)
    .bind(c.minor_units)
    .bind(c.numeric_code)
    .bind(c.is_iso)
    .bind(c.enabled)
    .bind(c.retired)
    .bind(now)
    .fetch_one(db)
    .await
}

/// Inserts unless the code exists; returns whether a row was added (idempotent seeding).
pub async fn insert_if_absent(
    db: &PgPool,
    c: &NewCurrency<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO currencies (code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8 END, $8, $8)
         ON CONFLICT (code) DO NOTHING",
    )
    .bind(c.code)
    .bind(c.name)
    .bind(c.minor_units)
    .bind(c.numeric_code)
    .bind(c.is_iso)
    .bind(c.enabled)
    .bind(c.retired)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(db: &PgPool, code: CurrencyCode) -> Result<Option<CurrencyRow>, sqlx::Error> {
    sqlx::query_as::<_, CurrencyRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM currencies WHERE code = $1"
    )))
    .bind(code)
    .fetch_optional(db)
    .await
}

pub async fn list(db: &PgPool, include_inactive: bool) -> Result<Vec<CurrencyRow>, sqlx::Error> {
    sqlx::query_as::<_, CurrencyRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM currencies
         WHERE $1 OR (enabled AND retired_at IS NULL)
         ORDER BY code"
    )))
    .bind(include_inactive)
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
    sqlx::query_as::<_, CurrencyRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE currencies SET
             name = COALESCE($2, name),
             enabled = COALESCE($3, enabled),
             retired_at = CASE WHEN $3 IS TRUE THEN NULL ELSE retired_at END,
             updated_at = $4
         WHERE code = $1
         RETURNING {COLUMNS}"
    )))
    .bind(code)
    .bind(name)
    .bind(enabled)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Deletes the row; fails with a foreign-key violation when history references it.
pub async fn delete(db: &PgPool, code: CurrencyCode) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM currencies WHERE code = $1")
        .bind(code)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn retire(
    db: &PgPool,
    code: CurrencyCode,
    now: DateTime<Utc>,
) -> Result<Option<CurrencyRow>, sqlx::Error> {
    sqlx::query_as::<_, CurrencyRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE currencies SET enabled = false, retired_at = COALESCE(retired_at, $2), updated_at = $2
         WHERE code = $1
         RETURNING {COLUMNS}"
    )))
    .bind(code)
    .bind(now)
    .fetch_optional(db)
    .await
}

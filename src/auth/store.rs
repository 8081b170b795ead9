//! SQL for users and refresh tokens. Nothing outside `auth` touches these tables.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{Email, Role, UserId};
use crate::pagination::Cursor;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub display_name: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        // The CHECK constraint allows only these two values.
        Role::parse(&self.role).unwrap_or(Role::Partner)
    }
}

const USER_COLUMNS: &str =
    "id, email, password_hash, role, display_name, disabled_at, created_at, updated_at";

pub async fn insert_user(
    db: &PgPool,
    email: &Email,
    password_hash: &str,
    role: Role,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (id, email, password_hash, role, display_name, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         RETURNING id, email, password_hash, role, display_name, disabled_at, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(email.as_str())
    .bind(password_hash)
    .bind(role.as_str())
    .bind(display_name)
    .bind(now)
    .fetch_one(db)
    .await
}

pub async fn find_by_email(db: &PgPool, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = $1"
    )))
    .bind(email.as_str())
    .fetch_optional(db)
    .await
}

pub async fn find_by_id(db: &PgPool, id: UserId) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id.0)
    .fetch_optional(db)
    .await
}

/// Partners, newest first, keyset-paginated.
pub async fn list_partners(
    db: &PgPool,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE role = 'partner'
           AND ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
         ORDER BY created_at DESC, id DESC
         LIMIT $3"
    )))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(db)
    .await
}

pub async fn update_partner(
    db: &PgPool,
    id: UserId,
    display_name: Option<&str>,
    disabled: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(
        "UPDATE users SET
             display_name = COALESCE($2, display_name),
             disabled_at = CASE
                 WHEN $3::boolean IS NULL THEN disabled_at
                 WHEN $3 THEN COALESCE(disabled_at, $4)
                 ELSE NULL END,
             updated_at = $4
         WHERE id = $1 AND role = 'partner'
         RETURNING id, email, password_hash, role, display_name, disabled_at, created_at, updated_at",
    )
    .bind(id.0)
    .bind(display_name)
    .bind(disabled)
    .bind(now)
    .fetch_optional(db)
    .await
}

pub async fn set_password(
    conn: &mut PgConnection,
    id: UserId,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND role = 'partner'",
    )
    .bind(id.0)
    .bind(password_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets any user's password (admins included): the operator's way back from a lost password.
pub async fn set_password_of_email(
    conn: &mut PgConnection,
    email: &Email,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE lower(email) = $1
         RETURNING {USER_COLUMNS}"
    )))
    .bind(email.as_str())
    .bind(password_hash)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Whether the user exists and is enabled (the per-request check behind every token).
pub async fn is_active(db: &PgPool, id: UserId) -> Result<bool, sqlx::Error> {
    let active: Option<bool> =
        sqlx::query_scalar("SELECT disabled_at IS NULL FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(db)
            .await?;
    Ok(active.unwrap_or(false))
}

#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert_refresh(
    conn: &mut PgConnection,
    user: UserId,
    family: Uuid,
    token_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(user.0)
    .bind(family)
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the token row so that two concurrent refreshes with one token cannot both rotate it.
pub async fn lock_refresh(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as::<_, RefreshRow>(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn mark_used(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user.0)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

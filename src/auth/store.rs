//! SQL for users and refresh tokens. Nothing outside `auth` touches these tables.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{Email, Role, UserId};
use crate::pagination::Cursor;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub display_name: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Tokens issued in another epoch are refused (see the `token_epoch_ends_sessions` migration).
    pub token_epoch: i32,
}

pub async fn insert_user(
    db: &PgPool,
    email: &Email,
    password_hash: &str,
    role: Role,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (id, email, password_hash, role, display_name, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6)
           RETURNING id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                     token_epoch"#,
        Uuid::now_v7(),
        email.as_str(),
        password_hash,
        role.as_str(),
        display_name,
        now,
    )
    .fetch_one(db)
    .await
}

pub async fn find_by_email(db: &PgPool, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                  token_epoch
           FROM users WHERE lower(email) = $1"#,
        email.as_str(),
    )
    .fetch_optional(db)
    .await
}

pub async fn find_by_id(db: &PgPool, id: UserId) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                  token_epoch
           FROM users WHERE id = $1"#,
        id.as_uuid(),
    )
    .fetch_optional(db)
    .await
}

/// Partners, newest first, keyset-paginated.
pub async fn list_partners(
    db: &PgPool,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    // The first page starts below the greatest possible key, so one statement whose plan (even
    // a generic one) compares the key serves every page.
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                  token_epoch
           FROM users
           WHERE role = 'partner'
             AND (created_at, id) < (COALESCE($1, 'infinity'::timestamptz),
                                     COALESCE($2, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
           ORDER BY created_at DESC, id DESC
           LIMIT $3"#,
        after.map(|c| c.at),
        after.map(|c| c.id),
        limit + 1,
    )
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
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET
               display_name = COALESCE($2, display_name),
               disabled_at = CASE
                   WHEN $3::boolean IS NULL THEN disabled_at
                   WHEN $3 THEN COALESCE(disabled_at, $4)
                   ELSE NULL END,
               updated_at = $4
           WHERE id = $1 AND role = 'partner'
           RETURNING id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                     token_epoch"#,
        id.as_uuid(),
        display_name,
        disabled,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Sets a partner's password; returns the partner's new token epoch (the trigger moved it on),
/// or `None` when there is no such partner.
pub async fn set_password(
    conn: &mut PgConnection,
    id: UserId,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND role = 'partner'
         RETURNING token_epoch",
        id.as_uuid(),
        password_hash,
        now,
    )
    .fetch_optional(conn)
    .await
}

/// Sets any user's password (admins included): the operator's way back from a lost password.
pub async fn set_password_of_email(
    conn: &mut PgConnection,
    email: &Email,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET password_hash = $2, updated_at = $3 WHERE lower(email) = $1
           RETURNING id, email, password_hash, role AS "role: Role", display_name, disabled_at, created_at, updated_at,
                     token_epoch"#,
        email.as_str(),
        password_hash,
        now,
    )
    .fetch_optional(conn)
    .await
}

/// The token epoch of an existing, enabled user; `None` when the user is disabled or gone (the
/// per-request check behind every token).
pub async fn active_token_epoch(db: &PgPool, id: UserId) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT token_epoch FROM users WHERE id = $1 AND disabled_at IS NULL",
        id.as_uuid(),
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug)]
pub struct RefreshRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The user's token epoch when this token was issued.
    pub token_epoch: i32,
}

pub async fn insert_refresh(
    conn: &mut PgConnection,
    user: UserId,
    token_epoch: i32,
    family: Uuid,
    token_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO refresh_tokens
             (id, user_id, family_id, token_hash, created_at, expires_at, token_epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        user.as_uuid(),
        family,
        token_hash,
        now,
        expires_at,
        token_epoch,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the token row so that two concurrent refreshes with one token cannot both rotate it.
pub async fn lock_refresh(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as!(
        RefreshRow,
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at, token_epoch
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    .fetch_optional(conn)
    .await
}

pub async fn mark_used(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        family,
        now,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user.as_uuid(),
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes at most `limit` refresh tokens that expired before `before` (an expired token is
/// refused whatever its row says); returns how many.
pub async fn delete_refresh_tokens_expired_before(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM refresh_tokens WHERE id IN (
             SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

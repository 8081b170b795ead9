//! SQL for users, refresh tokens and client credentials. Nothing outside `auth` touches these tables.

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

/// An enabled user's token epoch and the ids of its logged-out tokens that are not expired at
/// `now`; `None` for a disabled or missing user.
pub async fn active_token_status(
    db: &PgPool,
    id: UserId,
    now: DateTime<Utc>,
) -> Result<Option<(i32, Vec<Uuid>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT u.token_epoch,
                  COALESCE(array_agg(t.jti) FILTER (WHERE t.jti IS NOT NULL), '{}') AS "logged_out!: Vec<Uuid>"
           FROM users u
           LEFT JOIN logged_out_tokens t ON t.user_id = u.id AND t.expires_at > $2
           WHERE u.id = $1 AND u.disabled_at IS NULL
           GROUP BY u.id"#,
        id.as_uuid(),
        now,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.token_epoch, r.logged_out)))
}

/// Deletes `user`'s logout records of tokens expired by `now`: an expired token is refused
/// anyway. Called at each logout, so a user's records stay as few as its live sessions.
pub async fn forget_expired_logouts(
    conn: &mut PgConnection,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM logged_out_tokens WHERE user_id = $1 AND expires_at <= $2",
        user,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the token (or session) `jti` of `user` is logged out until `expires_at`.
pub async fn record_logout(
    conn: &mut PgConnection,
    jti: Uuid,
    user: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO logged_out_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(logged_out_tokens.expires_at, EXCLUDED.expires_at)",
        jti,
        user,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
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

// Client credentials (`api_credentials`).

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub name: String,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A credential to store; its secret only as a hash.
pub struct NewCredential<'a> {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub name: &'a str,
    pub client_id: &'a str,
    pub secret_hash: &'a [u8],
    pub created_at: DateTime<Utc>,
}

/// What [`insert_credential`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialInsert {
    Inserted,
    /// The partner already holds as many live credentials as allowed.
    CapReached,
    /// No partner has that id.
    NoPartner,
}

/// Stores a new credential unless its partner already holds `max` live ones. Concurrent
/// creations for one partner queue on the partner's row, so the cap holds under a burst.
pub async fn insert_credential(
    db: &PgPool,
    c: &NewCredential<'_>,
    max: i64,
) -> Result<CredentialInsert, sqlx::Error> {
    let mut tx = db.begin().await?;
    let partner = sqlx::query_scalar!(
        "SELECT id FROM users WHERE id = $1 AND role = 'partner' FOR UPDATE",
        c.partner_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if partner.is_none() {
        return Ok(CredentialInsert::NoPartner);
    }
    let done = sqlx::query!(
        "INSERT INTO api_credentials (id, partner_id, name, client_id, secret_hash, created_at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE (SELECT count(*) FROM api_credentials
                WHERE partner_id = $2 AND revoked_at IS NULL) < $7",
        c.id,
        c.partner_id,
        c.name,
        c.client_id,
        c.secret_hash,
        c.created_at,
        max,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if done.rows_affected() == 1 {
        CredentialInsert::Inserted
    } else {
        CredentialInsert::CapReached
    })
}

/// A partner's live credentials, oldest first (at most the cap, so no pages).
pub async fn list_credentials(
    db: &PgPool,
    partner: Uuid,
) -> Result<Vec<CredentialRow>, sqlx::Error> {
    sqlx::query_as!(
        CredentialRow,
        "SELECT id, partner_id, name, client_id, created_at, last_used_at
         FROM api_credentials WHERE partner_id = $1 AND revoked_at IS NULL
         ORDER BY created_at, id",
        partner,
    )
    .fetch_all(db)
    .await
}

/// Revokes live credential `id` (of `partner` when given); returns its partner, or `None` when
/// there is no such live credential.
pub async fn revoke_credential(
    db: &PgPool,
    id: Uuid,
    partner: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE api_credentials SET revoked_at = $3
         WHERE id = $1 AND ($2::uuid IS NULL OR partner_id = $2) AND revoked_at IS NULL
         RETURNING partner_id",
        id,
        partner,
        now,
    )
    .fetch_optional(db)
    .await
}

/// What the token endpoint needs to authenticate a client: the live credential with this
/// client id, its secret's hash, and its partner's token epoch when the partner is enabled.
#[derive(Debug)]
pub struct ClientRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub secret_hash: Vec<u8>,
    pub token_epoch: Option<i32>,
}

pub async fn find_client(db: &PgPool, client_id: &str) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as!(
        ClientRow,
        r#"SELECT c.id, c.partner_id, c.secret_hash,
                  CASE WHEN u.disabled_at IS NULL THEN u.token_epoch END AS "token_epoch?"
           FROM api_credentials c JOIN users u ON u.id = c.partner_id
           WHERE c.client_id = $1 AND c.revoked_at IS NULL"#,
        client_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn touch_credential(
    db: &PgPool,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE api_credentials SET last_used_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether credential `id` of `partner` is live (the per-request check behind its tokens).
pub async fn credential_is_live(db: &PgPool, id: Uuid, partner: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT 1 AS \"one!\" FROM api_credentials
         WHERE id = $1 AND partner_id = $2 AND revoked_at IS NULL",
        id,
        partner,
    )
    .fetch_optional(db)
    .await?
    .is_some())
}

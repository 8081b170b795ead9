//! Auth use cases: login, refresh rotation, logout, registration, partner management, and the
//! per-request check behind every access token. Handlers call these; these call `store`.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Auth;
use super::domain::{
    DisplayName, Email, LoginEmail, LoginPassword, NewAccount, NewPassword, PartnerId, Role, UserId,
};
pub use super::error::AuthError;
use super::store::{self, UserRow};
use super::throttle::{Attempt, LoginThrottle};
use super::tokens::{self, TokenError};
use crate::error::unique_violation;
use crate::pagination::{Cursor, Page};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub display_name: String,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            role: u.role,
            email: u.email,
            display_name: u.display_name,
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// OAuth 2.0 token response field names (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

/// The caller, as established from a valid access token of an existing, enabled user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: UserId,
    pub role: Role,
    pub jti: Uuid,
    pub expires_at: i64,
    /// The user's token epoch the token was issued in (the current one, once authenticated).
    pub epoch: i32,
    /// The session the token belongs to (see [`tokens::Claims::session`]).
    pub session: Uuid,
    /// When that session began, in unix seconds (see [`tokens::Claims::session_started`]).
    pub session_started: i64,
    /// The client credential the token was issued to, for a partner's machine.
    pub credential: Option<Uuid>,
}

impl From<&tokens::Claims> for Caller {
    fn from(claims: &tokens::Claims) -> Self {
        Self {
            id: UserId::from_uuid(claims.sub),
            role: claims.role,
            jti: claims.jti,
            expires_at: claims.exp,
            epoch: claims.epoch,
            session: claims.session(),
            session_started: claims.session_started(),
            credential: claims.cid,
        }
    }
}

async fn issue_pair(
    auth: &Auth,
    conn: &mut sqlx::PgConnection,
    user: UserId,
    role: Role,
    token_epoch: i32,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<TokenResponse, AuthError> {
    let (access, _) = auth.keys.issue(user, role, token_epoch, now)?;
    let refresh = tokens::new_refresh_token();
    let ttl = crate::settings::secs(auth.settings.refresh_token_ttl_secs);
    store::insert_refresh(
        conn,
        user,
        token_epoch,
        family,
        &tokens::hash_refresh_token(&refresh),
        now,
        now + Duration::seconds(ttl),
    )
    .await?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: auth.keys.access_ttl_secs(),
        refresh_token: refresh,
        refresh_expires_in: ttl,
    })
}

/// Checks a login's credentials against the throttle and the stored hash: the enabled user
/// they name, or why not.
async fn verify_login(
    auth: &Auth,
    email: &LoginEmail,
    password: LoginPassword,
    ip: &str,
) -> Result<UserRow, AuthError> {
    if password.expose().len() > 1024 {
        return Err(AuthError::InvalidCredentials);
    }
    let throttle = LoginThrottle::new(auth, email, ip);
    // The attempt is counted before the (slow) password check, so concurrent guesses cannot
    // all pass a check that none of them has counted yet.
    if let Attempt::Blocked {
        retry_after_secs,
        account,
    } = throttle.reserve().await
    {
        return Err(AuthError::Throttled {
            retry_after_secs,
            account,
        });
    }
    let user = match email.email() {
        Some(e) => store::find_by_email(&auth.db, e).await?,
        None => None,
    };
    // Verify against a dummy hash for unknown emails so both cost the same time.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| super::password::DUMMY_HASH.to_owned());
    let password_ok = super::password::verify(password.into_inner(), hash).await?;
    let user = match user {
        Some(u) if password_ok && u.disabled_at.is_none() => u,
        _ => return Err(AuthError::InvalidCredentials),
    };
    throttle.release().await;
    Ok(user)
}

/// Exchanges credentials for an access token and a refresh token (a new token family).
// The email stays out of the log: a pseudonym stands for the account it names.
#[tracing::instrument(skip(auth, email, password), fields(ip = %ip, account = %auth.keys.pseudonym(email)))]
pub async fn login(
    auth: &Auth,
    email: &LoginEmail,
    password: LoginPassword,
    ip: &str,
) -> Result<TokenResponse, AuthError> {
    let user = verify_login(auth, email, password, ip).await?;
    let now = auth.clock.now();
    let mut tx = auth.db.begin().await?;
    let pair = issue_pair(
        auth,
        &mut tx,
        UserId::from_uuid(user.id),
        user.role,
        user.token_epoch,
        Uuid::new_v4(),
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "login succeeded");
    Ok(pair)
}

/// Exchanges credentials for an access token alone, and the caller it establishes: a session
/// that is kept alive by [`renew_session`] rather than by a refresh token (the monitor's).
// The email stays out of the log: a pseudonym stands for the account it names.
#[tracing::instrument(skip(auth, email, password), fields(ip = %ip, account = %auth.keys.pseudonym(email)))]
pub async fn start_session(
    auth: &Auth,
    email: &LoginEmail,
    password: LoginPassword,
    ip: &str,
) -> Result<(String, Caller), AuthError> {
    let user = verify_login(auth, email, password, ip).await?;
    let (token, claims) = auth.keys.issue(
        UserId::from_uuid(user.id),
        user.role,
        user.token_epoch,
        auth.clock.now(),
    )?;
    tracing::info!(user_id = %user.id, "login succeeded");
    Ok((token, Caller::from(&claims)))
}

/// Rotates a refresh token. Presenting a token that was already used (a replay, likely a theft)
/// revokes its whole family, so both the thief and the victim must log in again.
#[tracing::instrument(skip_all)]
pub async fn refresh(auth: &Auth, refresh_token: &str) -> Result<TokenResponse, AuthError> {
    if refresh_token.is_empty() || refresh_token.len() > 256 {
        return Err(AuthError::InvalidToken("unknown refresh token".into()));
    }
    let now = auth.clock.now();
    let mut tx = auth.db.begin().await?;
    let Some(row) =
        store::lock_refresh(&mut tx, &tokens::hash_refresh_token(refresh_token)).await?
    else {
        return Err(AuthError::InvalidToken("unknown refresh token".into()));
    };
    if row.revoked_at.is_some() {
        return Err(AuthError::InvalidToken("refresh token revoked".into()));
    }
    if row.used_at.is_some() {
        let n = store::revoke_family(&mut tx, row.family_id, now).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %row.user_id, family = %row.family_id, revoked = n,
            "refresh token reuse detected; token family revoked");
        return Err(AuthError::InvalidToken("refresh token already used".into()));
    }
    if row.expires_at <= now {
        return Err(AuthError::InvalidToken("refresh token expired".into()));
    }
    let user = store::find_by_id(&auth.db, UserId::from_uuid(row.user_id)).await?;
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        return Err(AuthError::InvalidToken("account is disabled".into()));
    };
    // The account's sessions ended (new password, role change, disabled) after this one began.
    if row.token_epoch != user.token_epoch {
        return Err(AuthError::InvalidToken("refresh token revoked".into()));
    }
    store::mark_used(&mut tx, row.id, now).await?;
    let pair = issue_pair(
        auth,
        &mut tx,
        UserId::from_uuid(user.id),
        user.role,
        user.token_epoch,
        row.family_id,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(pair)
}

/// Revokes the refresh-token family of `refresh_token` (when given and owned by the caller)
/// and logs the caller's access token (and its session, when renewed) out until it would have
/// expired. PostgreSQL records the logout, in the transaction that revokes the family; Redis
/// gets a copy for the per-request check, and a Redis that is down or loses it changes nothing
/// (the check asks PostgreSQL when Redis has no answer).
pub async fn logout(
    auth: &Auth,
    caller: &Caller,
    refresh_token: Option<&str>,
) -> Result<(), AuthError> {
    let now = auth.clock.now();
    let leeway = crate::settings::secs(auth.settings.leeway_secs);
    let user = caller.id.as_uuid();
    // (id, seconds from now it must stay logged out)
    let mut logged_out = vec![(
        caller.jti,
        (caller.expires_at - now.timestamp()).max(1) + leeway,
    )];
    if caller.session != caller.jti {
        // A renewed session: its earlier tokens may still be unexpired (and renewable) too.
        let session_end =
            caller.session_started + crate::settings::secs(auth.settings.monitor_session_max_secs);
        logged_out.push((
            caller.session,
            (session_end - now.timestamp()).max(1) + leeway,
        ));
    }
    let mut tx = auth.db.begin().await?;
    if let Some(token) = refresh_token
        && let Some(row) = store::lock_refresh(&mut tx, &tokens::hash_refresh_token(token)).await?
        && row.user_id == user
    {
        store::revoke_family(&mut tx, row.family_id, now).await?;
    }
    store::forget_expired_logouts(&mut tx, user, now).await?;
    for (jti, ttl) in &logged_out {
        store::record_logout(&mut tx, *jti, user, now + chrono::TimeDelta::seconds(*ttl)).await?;
    }
    tx.commit().await?;
    auth.memo.forget_user(user);
    for (jti, ttl) in &logged_out {
        let result = auth
            .redis
            .run::<()>(
                redis::cmd("SET")
                    .arg(revoked_key(auth, user, *jti))
                    .arg(1)
                    .arg("EX")
                    .arg(*ttl),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not copy a logout to Redis; PostgreSQL has it");
        }
    }
    // The cached status lists the logged-out ids too, so that it cannot vouch for this token
    // should the copy above be lost while it lives.
    let status = UserStatus::from(store::active_token_status(&auth.db, caller.id, now).await?);
    publish_status(auth, caller.id, status).await;
    Ok(())
}

/// The logout mark of a token or session id of `user`. The user's keys share the hash tag
/// `{<user>}`, so that the per-request MGET of a user's status and marks stays in one Redis
/// Cluster slot (docs/scaling.md, "Redis Cluster").
fn revoked_key(auth: &Auth, user: Uuid, jti: Uuid) -> String {
    auth.redis
        .key(&format!("auth:{{{user}}}:revoked_jti:{jti}"))
}

/// A fresh access token continuing `caller`'s session, for a sliding session (the monitor's):
/// valid for another `auth.access_token_ttl_secs`, but never past `max_secs` seconds after the
/// session began. `None` when the session has nothing left to gain (already at its absolute end).
/// `caller` must come from [`authenticate`], which checked that the account is enabled and in
/// the token's epoch.
pub fn renew_session(
    auth: &Auth,
    caller: &Caller,
    max_secs: i64,
) -> Result<Option<(String, Caller)>, AuthError> {
    let now = auth.clock.now();
    let session_end = caller.session_started.saturating_add(max_secs);
    let expires_at = (now.timestamp() + auth.keys.access_ttl_secs()).min(session_end);
    if expires_at <= caller.expires_at {
        return Ok(None);
    }
    let (token, claims) = auth.keys.issue_continuing(
        caller.id,
        caller.role,
        caller.epoch,
        now,
        tokens::Continuation {
            sid: caller.session,
            auth_time: caller.session_started,
            expires_at,
        },
    )?;
    let renewed = Caller {
        jti: claims.jti,
        expires_at: claims.exp,
        ..caller.clone()
    };
    Ok(Some((token, renewed)))
}

/// Verifies an access token and checks that its user still exists, is enabled and is still in
/// the token's epoch (no password reset, role change or disable since it was issued), and that
/// the token was not logged out.
///
/// The user's status (current epoch, or disabled) is cached in Redis for
/// `auth.user_status_cache_secs` and a positive answer in process for
/// [`super::status_cache::STATUS_MEMO_TTL`]. Every change this service makes overwrites the Redis
/// entry with the new status, so it takes effect at once on every instance (within the memo's
/// second on the others).
pub async fn authenticate(auth: &Auth, token: &str) -> Result<Caller, AuthError> {
    authenticate_verified(auth, token, None).await
}

/// [`authenticate`], given what a middleware of the same request already found the token's
/// claims to be (signature and expiry verified, see [`super::extract::VerifiedToken`]), so the
/// signature is not verified twice; `None` verifies it here.
pub async fn authenticate_verified(
    auth: &Auth,
    token: &str,
    verified: Option<tokens::Claims>,
) -> Result<Caller, AuthError> {
    let verified = match verified {
        Some(claims) => Ok(claims),
        None => auth.keys.verify(token, auth.clock.now()),
    };
    let claims = verified.map_err(|e| match e {
        TokenError::Expired => AuthError::InvalidToken("token has expired".into()),
        TokenError::NotYetValid => AuthError::InvalidToken("token is not valid yet".into()),
        TokenError::TooLarge => AuthError::InvalidToken("token is too large".into()),
        TokenError::Invalid(_) => {
            AuthError::InvalidToken("token is malformed or its signature is invalid".into())
        }
    })?;
    let user = UserId::from_uuid(claims.sub);
    let caller = Caller::from(&claims);
    if auth.memo.is_fresh(user.as_uuid(), claims.jti) {
        return Ok(caller);
    }
    let status_key = status_key(auth, user);
    let token_revoked_key = revoked_key(auth, user.as_uuid(), claims.jti);
    // A renewed token is logged out with its session, whichever of its tokens logged out.
    let session_revoked_key = revoked_key(auth, user.as_uuid(), claims.session());
    let mut mget = redis::cmd("MGET");
    mget.arg(&status_key)
        .arg(&token_revoked_key)
        .arg(&session_revoked_key);
    if let Some(credential) = claims.cid {
        mget.arg(credential_status_key(auth, user, credential));
    }
    let cached: anyhow::Result<Vec<Option<String>>> = auth.redis.run(&mget).await;
    let (status, credential_live) = match cached.as_deref() {
        Ok([_, revoked, session, ..]) if revoked.is_some() || session.is_some() => {
            return Err(AuthError::InvalidToken("token was logged out".into()));
        }
        Ok([cached_status, _, _, cached_credential @ ..]) => {
            let status = match cached_status {
                Some(cached) => UserStatus::decode(cached),
                None => {
                    let status = UserStatus::from(
                        store::active_token_status(&auth.db, user, auth.clock.now()).await?,
                    );
                    cache_nx(auth, &status_key, &status.encode()).await;
                    status
                }
            };
            let credential_live = match (claims.cid, cached_credential.first()) {
                (None, _) => true,
                (Some(_), Some(Some(cached))) => cached == CREDENTIAL_LIVE,
                (Some(credential), _) => {
                    let live =
                        store::credential_is_live(&auth.db, credential, user.as_uuid()).await?;
                    let value = if live {
                        CREDENTIAL_LIVE
                    } else {
                        CREDENTIAL_REVOKED
                    };
                    cache_nx(auth, &credential_status_key(auth, user, credential), value).await;
                    live
                }
            };
            (status, credential_live)
        }
        Ok(_) | Err(_) => {
            if let Err(e) = &cached {
                tracing::warn!(error = %e, "user status cache unavailable; asking PostgreSQL");
            }
            let status = UserStatus::from(
                store::active_token_status(&auth.db, user, auth.clock.now()).await?,
            );
            let credential_live = match claims.cid {
                Some(credential) => {
                    store::credential_is_live(&auth.db, credential, user.as_uuid()).await?
                }
                None => true,
            };
            (status, credential_live)
        }
    };
    if !credential_live {
        return Err(AuthError::InvalidToken(
            "token was revoked: its client credential was revoked".into(),
        ));
    }
    match status {
        // Redis lost its copy of a logout (flushed, restarted): PostgreSQL's record stands.
        UserStatus::Active { logged_out, .. }
            if logged_out.contains(&claims.jti) || logged_out.contains(&claims.session()) =>
        {
            return Err(AuthError::InvalidToken("token was logged out".into()));
        }
        UserStatus::Active { token_epoch, .. } if token_epoch == claims.epoch => {}
        UserStatus::Active { .. } => {
            return Err(AuthError::InvalidToken(
                "token was revoked: the account's sessions ended".into(),
            ));
        }
        UserStatus::Inactive => {
            return Err(AuthError::InvalidToken(
                "account is disabled or deleted".into(),
            ));
        }
    }
    auth.memo.remember(user.as_uuid(), claims.jti);
    Ok(caller)
}

/// What the per-request check needs to know about a user, as cached in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserStatus {
    /// Enabled; tokens of this epoch are valid, except those logged out (by token or session
    /// id; unexpired ones only), as PostgreSQL recorded them.
    Active {
        token_epoch: i32,
        logged_out: Vec<Uuid>,
    },
    /// Disabled or deleted.
    Inactive,
}

impl From<Option<(i32, Vec<Uuid>)>> for UserStatus {
    fn from(row: Option<(i32, Vec<Uuid>)>) -> Self {
        row.map_or(UserStatus::Inactive, |(token_epoch, logged_out)| {
            UserStatus::Active {
                token_epoch,
                logged_out,
            }
        })
    }
}

impl UserStatus {
    /// `inactive`, or the epoch followed by the logged-out ids: `3` or `3;<uuid>,<uuid>`.
    fn encode(&self) -> String {
        match self {
            UserStatus::Active {
                token_epoch,
                logged_out,
            } if logged_out.is_empty() => token_epoch.to_string(),
            UserStatus::Active {
                token_epoch,
                logged_out,
            } => {
                let ids: Vec<String> = logged_out.iter().map(Uuid::to_string).collect();
                format!("{token_epoch};{}", ids.join(","))
            }
            UserStatus::Inactive => "inactive".to_owned(),
        }
    }

    /// Anything unreadable counts as inactive: refusing a token is the safe side.
    fn decode(cached: &str) -> Self {
        let (epoch, ids) = cached.split_once(';').unwrap_or((cached, ""));
        let logged_out: Result<Vec<Uuid>, _> = ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(Uuid::parse_str)
            .collect();
        match (epoch.parse(), logged_out) {
            (Ok(token_epoch), Ok(logged_out)) => UserStatus::Active {
                token_epoch,
                logged_out,
            },
            _ => UserStatus::Inactive,
        }
    }
}

/// Caches `value` at `key` for `auth.user_status_cache_secs` unless a change wrote it since our
/// read (NX), so that a concurrent change is never overwritten by what it replaced.
async fn cache_nx(auth: &Auth, key: &str, value: &str) {
    let _ = auth
        .redis
        .run::<Option<String>>(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(auth.settings.user_status_cache_secs.max(1)),
        )
        .await;
}

/// What the status cache holds for a client credential.
const CREDENTIAL_LIVE: &str = "live";
const CREDENTIAL_REVOKED: &str = "revoked";

/// The cached status of a client credential of `partner` (hash tag `{<partner>}`, as
/// [`revoked_key`]).
fn credential_status_key(auth: &Auth, partner: UserId, credential: Uuid) -> String {
    auth.redis.key(&format!(
        "auth:{{{}}}:credential_status:{credential}",
        partner.as_uuid()
    ))
}

/// Publishes a credential's revocation like [`publish_status`] does a user's: this process
/// forgets the partner's vouched-for tokens, and the cached status is overwritten with
/// `revoked`, so every instance refuses the credential's tokens within the status memo's second.
pub(super) async fn publish_credential_revoked(auth: &Auth, partner: UserId, credential: Uuid) {
    auth.memo.forget_user(partner.as_uuid());
    let result = auth
        .redis
        .run::<()>(
            redis::cmd("SET")
                .arg(credential_status_key(auth, partner, credential))
                .arg(CREDENTIAL_REVOKED)
                .arg("EX")
                .arg(auth.settings.user_status_cache_secs.max(1)),
        )
        .await;
    if let Err(e) = result {
        // The entry expires within user_status_cache_secs anyway.
        tracing::warn!(error = %e, "could not publish the credential's revocation");
    }
}

/// The cached status of `user` (hash tag `{<user>}`, as [`revoked_key`]).
fn status_key(auth: &Auth, user: UserId) -> String {
    auth.redis
        .key(&format!("auth:{{{}}}:user_status", user.as_uuid()))
}

/// Publishes a user's new status after a change (disable, enable, new password): this process
/// forgets the tokens it vouched for, and the Redis entry is overwritten (not deleted) so that a
/// concurrent check that read the old row cannot put the old status back.
async fn publish_status(auth: &Auth, user: UserId, status: UserStatus) {
    auth.memo.forget_user(user.as_uuid());
    let result = auth
        .redis
        .run::<()>(
            redis::cmd("SET")
                .arg(status_key(auth, user))
                .arg(status.encode())
                .arg("EX")
                .arg(auth.settings.user_status_cache_secs.max(1)),
        )
        .await;
    if let Err(e) = result {
        // The entry expires within user_status_cache_secs anyway.
        tracing::warn!(error = %e, "could not publish the user's new status");
    }
}

/// Creates a user from raw input (the CLI, the seed): parsed field by field, as a request's
/// would be, then [`create_account`].
pub async fn create_user(
    auth: &Auth,
    email: &str,
    password: &str,
    role: Role,
    display_name: &str,
) -> Result<UserView, AuthError> {
    create_account(
        auth,
        NewAccount::parse(email, display_name, password)?,
        role,
    )
    .await
}

/// Creates a user (admin API, registration, and through [`create_user`] the CLI and the seed).
pub async fn create_account(
    auth: &Auth,
    account: NewAccount,
    role: Role,
) -> Result<UserView, AuthError> {
    let hash = super::password::hash(account.password.expose().to_owned()).await?;
    match store::insert_user(
        &auth.db,
        &account.email,
        &hash,
        role,
        account.display_name.as_str(),
        auth.clock.now(),
    )
    .await
    {
        Ok(row) => Ok(row.into()),
        Err(e) if unique_violation(&e) == Some("users_email_key") => Err(AuthError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

/// Whether self-registration is open (`auth.registration_enabled`).
pub fn check_registration_open(auth: &Auth) -> Result<(), AuthError> {
    if auth.settings.registration_enabled {
        Ok(())
    } else {
        Err(AuthError::RegistrationClosed)
    }
}

/// Self-registration of a partner. A taken email gets the same answer as a new one (and costs
/// the same: the password is hashed either way), so registration does not tell a stranger which
/// addresses have accounts; the existing account is left untouched.
pub async fn register(auth: &Auth, account: NewAccount) -> Result<(), AuthError> {
    check_registration_open(auth)?;
    match create_account(auth, account, Role::Partner).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "partner registered");
            Ok(())
        }
        Err(AuthError::EmailTaken) => {
            tracing::info!("registration for an existing email; answered as if new");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The caller's own profile, from this process's memo (see [`Auth::profiles`]); PostgreSQL is
/// asked when the memo does not have it.
pub async fn me(auth: &Auth, caller: &Caller) -> Result<ProfileJson, AuthError> {
    auth.profiles
        .get_or_load(&auth.redis, caller.id, || async {
            let view = store::find_by_id(&auth.db, caller.id)
                .await?
                .map(UserView::from)
                .ok_or_else(|| AuthError::InvalidToken("account no longer exists".into()))?;
            let json = serde_json::to_vec(&view).map_err(anyhow::Error::from)?;
            Ok(ProfileJson(json.into()))
        })
        .await
}

/// A [`UserView`] as `GET /me` answers it, serialised once per change of the user's row
/// (memoised with it) rather than on every request.
#[derive(Debug, Clone)]
pub struct ProfileJson(pub actix_web::web::Bytes);

/// A user's row changed (name, status, password): every instance forgets the profiles it
/// memoised (this one at once, the others within a second).
async fn profile_changed(auth: &Auth) {
    auth.profiles.changed(&auth.redis).await;
}

pub async fn list_partners(
    auth: &Auth,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<Page<UserView>, AuthError> {
    let rows = store::list_partners(&auth.db, limit, cursor).await?;
    let views: Vec<UserView> = rows.into_iter().map(UserView::from).collect();
    Ok(Page::from_rows(views, limit, |u| Cursor {
        at: u.created_at,
        id: u.id,
    }))
}

/// The partner a path names (`/partners/{id}/…`), checked to exist. A path id that is not a
/// UUID names no partner either, so both answer the same 404 and reveal nothing more.
pub async fn partner_named(auth: &Auth, raw_id: &str) -> Result<PartnerId, AuthError> {
    let id = user_named(raw_id)?;
    get_partner(auth, id).await?;
    Ok(PartnerId::from_uuid(id.as_uuid()))
}

/// The user a path names, parsed only: the query that uses it finds out whether it exists.
pub fn user_named(raw_id: &str) -> Result<UserId, AuthError> {
    Uuid::parse_str(raw_id)
        .map(UserId::from_uuid)
        .map_err(|_| AuthError::PartnerNotFound)
}

pub async fn get_partner(auth: &Auth, id: UserId) -> Result<UserView, AuthError> {
    store::find_by_id(&auth.db, id)
        .await?
        .filter(|u| u.role == Role::Partner)
        .map(UserView::from)
        .ok_or(AuthError::PartnerNotFound)
}

pub async fn update_partner(
    auth: &Auth,
    id: UserId,
    display_name: Option<&DisplayName>,
    disabled: Option<bool>,
) -> Result<UserView, AuthError> {
    let row = store::update_partner(
        &auth.db,
        id,
        display_name.map(DisplayName::as_str),
        disabled,
        auth.clock.now(),
    )
    .await?
    .ok_or(AuthError::PartnerNotFound)?;
    profile_changed(auth).await;
    if disabled.is_some() {
        let status = match row.disabled_at {
            Some(_) => UserStatus::Inactive,
            // Enabled again: its logged-out tokens stay logged out.
            None => {
                UserStatus::from(store::active_token_status(&auth.db, id, auth.clock.now()).await?)
            }
        };
        publish_status(auth, id, status).await;
    }
    Ok(row.into())
}

/// Sets a new password for any user, admin or partner, found by email (the CLI's
/// `user set-password`): the token epoch moves on and the refresh tokens are revoked, so the
/// user's other sessions end, and the account's login lock is lifted (whoever sets a password
/// means the user to log in with it now, not after the throttle window).
pub async fn set_password_by_email(
    auth: &Auth,
    email: &str,
    password: &str,
) -> Result<UserView, AuthError> {
    let email = Email::parse(email).map_err(|m| AuthError::invalid("email", m))?;
    let password = NewPassword::parse(password, &[email.as_str()])
        .map_err(|m| AuthError::invalid("password", m))?;
    let hash = super::password::hash(password.expose().to_owned()).await?;
    let now = auth.clock.now();
    let mut tx = auth.db.begin().await?;
    let row = store::set_password_of_email(&mut tx, &email, &hash, now)
        .await?
        .ok_or(AuthError::UserNotFound)?;
    let user: UserView = row.into();
    store::revoke_all_for_user(&mut tx, UserId::from_uuid(user.id), now).await?;
    tx.commit().await?;
    profile_changed(auth).await;
    lift_login_lock(auth, &email).await;
    Ok(user)
}

/// Lifts a user's login lock after a new password: best effort, since the password is set
/// either way. This instance's fallback counter is cleared even without Redis; another
/// instance's clears with its window.
async fn lift_login_lock(auth: &Auth, email: &Email) {
    if let Err(e) = super::throttle::clear_account(auth, email).await {
        tracing::warn!(error = %e, "could not lift the login lock after a new password (Redis)");
    }
}

/// Lifts the login lock of the account with this email (the CLI's `user unlock`), without
/// changing its password. Ok(true) when it was locked (had failed logins counted).
pub async fn unlock_login(auth: &Auth, email: &str) -> Result<bool, AuthError> {
    let email = Email::parse(email).map_err(|m| AuthError::invalid("email", m))?;
    store::find_by_email(&auth.db, &email)
        .await?
        .ok_or(AuthError::UserNotFound)?;
    Ok(super::throttle::clear_account(auth, &email).await?)
}

/// Sets a new password; every access and refresh token of the partner stops working (the token
/// epoch moves on, and the refresh tokens are marked revoked too).
pub async fn reset_password(auth: &Auth, id: UserId, password: &str) -> Result<(), AuthError> {
    let user = store::find_by_id(&auth.db, id)
        .await?
        .filter(|u| u.role == Role::Partner)
        .ok_or(AuthError::PartnerNotFound)?;
    // The strength check needs the account's own email and name, so it happens here, once the
    // partner is found (an unknown partner is a 404 whatever the password).
    let password = NewPassword::parse(password, &[&user.email, &user.display_name])
        .map_err(|m| AuthError::invalid("password", m))?;
    let hash = super::password::hash(password.expose().to_owned()).await?;
    let now = auth.clock.now();
    let mut tx = auth.db.begin().await?;
    let Some(token_epoch) = store::set_password(&mut tx, id, &hash, now).await? else {
        return Err(AuthError::PartnerNotFound);
    };
    store::revoke_all_for_user(&mut tx, id, now).await?;
    tx.commit().await?;
    profile_changed(auth).await;
    if let Ok(email) = Email::parse(&user.email) {
        lift_login_lock(auth, &email).await;
    }
    let status = match store::find_by_id(&auth.db, id).await? {
        // A new epoch: every earlier token is refused by it, logged out or not.
        Some(user) if user.disabled_at.is_none() => UserStatus::Active {
            token_epoch,
            logged_out: Vec::new(),
        },
        _ => UserStatus::Inactive,
    };
    publish_status(auth, id, status).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_status_keeps_its_logged_out_tokens_and_unreadable_is_inactive() {
        let logged_out = vec![Uuid::new_v4(), Uuid::new_v4()];
        for status in [
            UserStatus::Active {
                token_epoch: 3,
                logged_out: Vec::new(),
            },
            UserStatus::Active {
                token_epoch: 0,
                logged_out,
            },
            UserStatus::Inactive,
        ] {
            assert_eq!(UserStatus::decode(&status.encode()), status);
        }
        // What the cache held before logouts were listed still reads.
        assert_eq!(
            UserStatus::decode("7"),
            UserStatus::Active {
                token_epoch: 7,
                logged_out: Vec::new()
            }
        );
        for garbage in ["", "x", "3;not-a-uuid", "inactive"] {
            assert_eq!(
                UserStatus::decode(garbage),
                UserStatus::Inactive,
                "{garbage}"
            );
        }
    }
}

//! Auth: users (admins and partners), argon2id passwords, JWT access tokens, rotating refresh
//! tokens, client credentials for partners' machines (the OAuth `client_credentials` grant),
//! login throttling, and the extractors that enforce roles. Owns the `users`, `refresh_tokens`
//! and `api_credentials` tables; other modules learn who the caller is only through
//! [`AuthenticatedUser`] and its role-specific wrappers.

pub mod credentials;
pub mod domain;
pub mod error;
pub mod extract;
pub mod jwt_hmac;
pub mod password;
pub mod routes;
pub mod service;
pub mod status_cache;
pub mod store;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use ipnet::IpNet;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::memo::Memo;
use crate::redis_client::{OutageLog, Redis};
use crate::settings::AuthSettings;

pub use domain::{DisplayName, Email, PartnerId, Role, UserId};
pub use extract::{AdminUser, AuthenticatedUser, PartnerUser};
pub use service::AuthError;
use status_cache::StatusMemo;
use tokens::TokenKeys;

/// What the auth use cases run with: the pool, Redis (status cache, deny-list, throttle), the
/// clock, `auth.*`, and this process's token keys and status memo, both built once. Cheap to
/// clone; routes and extractors get it as `web::Data<Auth>`.
#[derive(Clone)]
pub struct Auth {
    /// PostgreSQL, where users and refresh tokens are stored.
    pub db: PgPool,
    /// Redis, for the user status cache, logged-out tokens and the login throttle.
    pub redis: Redis,
    /// Now, for token lifetimes.
    pub clock: Clock,
    /// The `auth.*` settings.
    pub settings: Arc<AuthSettings>,
    /// Signing and verifying keys of access tokens, derived from `auth.jwt_secret` once rather
    /// than on every request.
    pub keys: Arc<TokenKeys>,
    /// This process's memo of recently checked tokens (see [`status_cache`]).
    pub memo: Arc<StatusMemo>,
    /// `server.trusted_proxies`: peers whose forwarded client address names the throttle bucket
    /// (see [`routes::client_ip`]).
    pub trusted_proxies: Arc<[IpNet]>,
    /// This process's memo of users' profiles as `/me` shows them (see [`crate::memo`]):
    /// every change to a user's row announces itself, so no instance serves a profile more
    /// than a second behind.
    pub profiles: Arc<Memo<UserId, service::ProfileJson>>,
    /// The login throttle's counters while Redis does not answer (see [`throttle`]).
    pub throttle_fallback: Arc<throttle::LocalCounters>,
    /// Whether the login throttle is on its fallback now, so it is logged once per outage.
    pub throttle_outage: Arc<OutageLog>,
}

impl Auth {
    /// The auth handle of a process, with an empty status memo.
    pub fn new(
        db: PgPool,
        redis: Redis,
        clock: Clock,
        settings: &AuthSettings,
        trusted_proxies: &[IpNet],
    ) -> Self {
        Self {
            db,
            redis,
            clock,
            keys: Arc::new(TokenKeys::new(settings)),
            settings: Arc::new(settings.clone()),
            memo: Arc::default(),
            profiles: Arc::new(Memo::new("users")),
            trusted_proxies: trusted_proxies.into(),
            throttle_fallback: Arc::default(),
            throttle_outage: Arc::default(),
        }
    }
}

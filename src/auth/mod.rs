//! Auth: users (admins and partners), argon2id passwords, JWT access tokens, rotating refresh
//! tokens, login throttling, and the extractors that enforce roles. Owns the `users` and
//! `refresh_tokens` tables; other modules learn who the caller is only through
//! [`AuthenticatedUser`] and its role-specific wrappers.

pub mod domain;
pub mod extract;
pub mod jwt_hmac;
pub mod password;
pub mod routes;
pub mod service;
pub mod status_cache;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use domain::{Email, PartnerId, Role, UserId};
pub use extract::{AdminUser, AuthenticatedUser, PartnerUser};
pub use service::AuthError;

//! The monitor's browser session: a cookie carrying a short-lived access token issued by
//! [`crate::auth::service::login`], and the CSRF token derived from it.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it), scoped to `/monitor`, and `Secure` outside `local` and `test` (plain HTTP on a laptop).
//! It lives as long as the access token; after that the admin logs in again.
//!
//! CSRF: every state-changing form carries `HMAC-SHA256(jwt_secret, "monitor-csrf:" + jti)` of
//! the session's token. It is bound to the session (a token of another session is refused), needs
//! no storage, and ends with the session. `SameSite=Strict` already stops cross-site posts in
//! current browsers; the token covers older ones and same-site attackers.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use super::MonitorError;
use crate::auth::Role;
use crate::auth::service::{self, Caller};
use crate::auth::status_cache::StatusMemo;
use crate::settings::{Environment, Settings};
use crate::state::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "ccs_monitor";
/// The path the cookie is scoped to.
const COOKIE_PATH: &str = "/monitor";

type HmacSha256 = hmac::Hmac<Sha256>;

/// An admin signed in to the monitor, established from the session cookie.
#[derive(Debug, Clone)]
pub struct MonitorSession {
    /// The admin, as the auth service sees them.
    pub caller: Caller,
    /// The CSRF token every form of this session must send back.
    pub csrf: String,
}

impl MonitorSession {
    /// Refuses a state-changing request whose form did not carry this session's CSRF token.
    pub fn verify_csrf(&self, state: &AppState, sent: Option<&str>) -> Result<(), MonitorError> {
        let sent = sent.and_then(|s| hex::decode(s).ok()).unwrap_or_default();
        // `verify_slice` compares in constant time.
        csrf_mac(&state.settings, &self.caller)
            .verify_slice(&sent)
            .map_err(|_| MonitorError::Csrf)
    }
}

fn csrf_mac(settings: &Settings, caller: &Caller) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(settings.auth.jwt_secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(b"monitor-csrf:");
    mac.update(caller.jti.as_bytes());
    mac
}

fn csrf_token(settings: &Settings, caller: &Caller) -> String {
    hex::encode(csrf_mac(settings, caller).finalize().into_bytes())
}

/// The session cookie holding `access_token` for `max_age_secs`.
pub fn session_cookie(
    settings: &Settings,
    access_token: &str,
    max_age_secs: i64,
) -> Cookie<'static> {
    Cookie::build(COOKIE, access_token.to_owned())
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(!matches!(
            settings.environment,
            Environment::Local | Environment::Test
        ))
        .max_age(CookieDuration::seconds(max_age_secs.max(1)))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn cleared_cookie(settings: &Settings) -> Cookie<'static> {
    let mut cookie = session_cookie(settings, "", 1);
    cookie.make_removal();
    cookie
}

/// Checks an access token for the monitor: valid, not logged out, of an enabled admin.
pub async fn admin_from_token(
    state: &AppState,
    memo: &StatusMemo,
    token: &str,
) -> Result<Caller, MonitorError> {
    let caller = service::authenticate(state, memo, token)
        .await
        .map_err(|_| MonitorError::LoginRequired)?;
    if caller.role != Role::Admin {
        return Err(MonitorError::LoginRequired);
    }
    Ok(caller)
}

impl FromRequest for MonitorSession {
    type Error = MonitorError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, MonitorError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let memo = req.app_data::<web::Data<StatusMemo>>().cloned();
        let token = req.cookie(COOKIE).map(|c| c.value().to_owned());
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                MonitorError::Internal(anyhow::anyhow!("AppState is not registered"))
            })?;
            let memo = memo.ok_or_else(|| {
                MonitorError::Internal(anyhow::anyhow!("StatusMemo is not registered"))
            })?;
            let token = token
                .filter(|t| !t.is_empty())
                .ok_or(MonitorError::LoginRequired)?;
            let caller = admin_from_token(&state, &memo, &token).await?;
            let csrf = csrf_token(&state.settings, &caller);
            Ok(MonitorSession { caller, csrf })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserId;

    fn caller() -> Caller {
        Caller {
            id: UserId(uuid::Uuid::new_v4()),
            role: Role::Admin,
            jti: uuid::Uuid::new_v4(),
            expires_at: 0,
        }
    }

    fn settings() -> Settings {
        crate::settings::load_from(
            std::path::Path::new("settings"),
            Environment::Test,
            std::iter::empty(),
        )
        .unwrap()
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let settings = settings();
        let a = caller();
        let b = caller();
        assert_eq!(csrf_token(&settings, &a), csrf_token(&settings, &a));
        assert_ne!(csrf_token(&settings, &a), csrf_token(&settings, &b));
        assert_eq!(csrf_token(&settings, &a).len(), 64);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_outside_local_and_test() {
        let mut settings = settings();
        let cookie = session_cookie(&settings, "t", 900);
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some("/monitor"));
        assert_eq!(cookie.secure(), Some(false));
        settings.environment = Environment::Production;
        assert_eq!(session_cookie(&settings, "t", 900).secure(), Some(true));
    }
}

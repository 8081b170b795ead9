//! The monitor's browser session: a cookie carrying a short-lived access token issued by
//! [`crate::auth::service::login`], and the CSRF token derived from it.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it), scoped to `/monitor`, and `Secure` outside `local` and `test` (plain HTTP on a laptop).
//! It lives as long as the access token, but the session slides: a page requested when a minute
//! or more of the token's life is used up gets a renewed token (same session, new `jti`, see
//! [`crate::auth::service::renew_session`]) in a fresh cookie, so an open self-refreshing page
//! keeps the admin signed in. `auth.monitor_session_max_secs` after the login it ends however
//! active the admin is; logging out ends every token of the session.
//!
//! CSRF: every state-changing form carries `HMAC-SHA256(jwt_secret, "monitor-csrf:" + session)`
//! of the session id (stable across renewals). It is bound to the session (a token of another
//! session is refused), needs no storage, and ends with the session. `SameSite=Strict` already
//! stops cross-site posts in current browsers; the token covers older ones and same-site
//! attackers.
//!
//! The login form, before any session exists, has a token of its own (login CSRF: a page that
//! signs the admin's browser in to an account of the attacker's choosing): `GET /monitor/login`
//! sets a pre-login cookie holding a random nonce, and the form carries
//! `HMAC-SHA256(jwt_secret, "monitor-login-csrf:" + nonce)`; a login post whose cookie and field
//! do not match is refused before the credentials are looked at.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use super::MonitorError;
use crate::auth::service::{self, Caller};
use crate::auth::{Auth, Role};
use crate::settings::{AuthSettings, Environment};

/// Name of the session cookie.
pub const COOKIE: &str = "ccs_monitor";
/// The path the cookie is scoped to.
const COOKIE_PATH: &str = "/monitor";
/// Name of the pre-login cookie holding the login form's nonce.
pub const LOGIN_COOKIE: &str = "ccs_monitor_login";
/// How long a login form stays usable, in seconds.
const LOGIN_FORM_SECS: i64 = 3600;
/// How much of a session token's life a request may use before the token is renewed, in
/// seconds: a renewal at most once a minute, and an idle session still ends one access-token
/// lifetime after its last page.
const RENEW_AFTER_SECS: i64 = 60;

type HmacSha256 = hmac::Hmac<Sha256>;

/// What the monitor's sign-in runs with: the auth capability (token checks and renewals, and
/// `auth.jwt_secret` as the CSRF key) and whether its cookies are `Secure`. Routes and the
/// [`MonitorSession`] extractor get it as `web::Data<Sessions>`.
#[derive(Clone)]
pub struct Sessions {
    pub auth: Auth,
    /// `Secure` cookies: everywhere but `local` and `test` (plain HTTP on a laptop).
    pub secure_cookies: bool,
}

impl Sessions {
    pub fn new(auth: Auth, environment: Environment) -> Self {
        Self {
            auth,
            secure_cookies: secure_cookies(environment),
        }
    }

    /// The login form's CSRF token for the pre-login nonce `nonce`.
    pub fn login_csrf_token(&self, nonce: &str) -> String {
        login_csrf_token(&self.auth.settings, nonce)
    }

    /// Checks a login post: its form field must be the token of the nonce in its pre-login
    /// cookie.
    pub fn verify_login_csrf(&self, nonce: Option<&str>, sent: &str) -> Result<(), MonitorError> {
        verify_login_csrf(&self.auth.settings, nonce, sent)
    }

    /// A new pre-login nonce and the cookie carrying it, scoped to the login form.
    pub fn new_login_cookie(&self) -> (String, Cookie<'static>) {
        new_login_cookie(self.secure_cookies)
    }

    /// A cookie that makes the browser forget the pre-login nonce (after a successful login).
    pub fn cleared_login_cookie(&self) -> Cookie<'static> {
        let (_, mut cookie) = self.new_login_cookie();
        cookie.make_removal();
        cookie
    }

    /// The session cookie holding `access_token` for `max_age_secs`.
    pub fn session_cookie(&self, access_token: &str, max_age_secs: i64) -> Cookie<'static> {
        session_cookie(self.secure_cookies, access_token, max_age_secs)
    }

    /// A cookie that makes the browser forget the session.
    pub fn cleared_cookie(&self) -> Cookie<'static> {
        let mut cookie = self.session_cookie("", 1);
        cookie.make_removal();
        cookie
    }

    /// Checks an access token for the monitor: valid, not logged out, of an enabled admin.
    pub async fn admin_from_token(&self, token: &str) -> Result<Caller, MonitorError> {
        let caller = service::authenticate(&self.auth, token)
            .await
            .map_err(|_| MonitorError::LoginRequired)?;
        if caller.role != Role::Admin {
            return Err(MonitorError::LoginRequired);
        }
        Ok(caller)
    }
}

/// An admin signed in to the monitor, established from the session cookie.
#[derive(Clone)]
pub struct MonitorSession {
    /// The admin, as the auth service sees them.
    pub caller: Caller,
    /// The CSRF token every form of this session must send back.
    pub csrf: String,
    /// The MAC [`MonitorSession::csrf`] is the output of, to check a sent token against.
    csrf_mac: HmacSha256,
}

impl std::fmt::Debug for MonitorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorSession")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl MonitorSession {
    fn new(settings: &AuthSettings, caller: Caller) -> Self {
        let csrf_mac = csrf_mac(settings, &caller);
        Self {
            csrf: hex::encode(csrf_mac.clone().finalize().into_bytes()),
            csrf_mac,
            caller,
        }
    }

    /// Refuses a state-changing request whose form did not carry this session's CSRF token.
    pub fn verify_csrf(&self, sent: Option<&str>) -> Result<(), MonitorError> {
        let sent = sent.and_then(|s| hex::decode(s).ok()).unwrap_or_default();
        // `verify_slice` compares in constant time.
        self.csrf_mac
            .clone()
            .verify_slice(&sent)
            .map_err(|_| MonitorError::Csrf)
    }
}

fn keyed_mac(settings: &AuthSettings, purpose: &[u8], subject: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(settings.jwt_secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(purpose);
    mac.update(subject);
    mac
}

fn csrf_mac(settings: &AuthSettings, caller: &Caller) -> HmacSha256 {
    // The session, not the token: a page rendered just before a renewal still posts fine.
    keyed_mac(settings, b"monitor-csrf:", caller.session.as_bytes())
}

fn login_csrf_token(settings: &AuthSettings, nonce: &str) -> String {
    hex::encode(
        keyed_mac(settings, b"monitor-login-csrf:", nonce.as_bytes())
            .finalize()
            .into_bytes(),
    )
}

/// The nonce of a pre-login cookie, if it is one this service could have set.
pub fn login_nonce(req: &HttpRequest) -> Option<String> {
    req.cookie(LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn new_login_cookie(secure: bool) -> (String, Cookie<'static>) {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let cookie = Cookie::build(LOGIN_COOKIE, nonce.clone())
        .path(super::LOGIN_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(LOGIN_FORM_SECS))
        .finish();
    (nonce, cookie)
}

fn verify_login_csrf(
    settings: &AuthSettings,
    nonce: Option<&str>,
    sent: &str,
) -> Result<(), MonitorError> {
    let nonce = nonce.ok_or(MonitorError::Csrf)?;
    let sent = hex::decode(sent).map_err(|_| MonitorError::Csrf)?;
    keyed_mac(settings, b"monitor-login-csrf:", nonce.as_bytes())
        .verify_slice(&sent)
        .map_err(|_| MonitorError::Csrf)
}

/// Whether cookies are `Secure` in `environment`: not in `local` and `test`, which serve plain
/// HTTP on a laptop.
fn secure_cookies(environment: Environment) -> bool {
    !matches!(environment, Environment::Local | Environment::Test)
}

fn session_cookie(secure: bool, access_token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(COOKIE, access_token.to_owned())
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(max_age_secs.max(1)))
        .finish()
}

impl FromRequest for MonitorSession {
    type Error = MonitorError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, MonitorError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let sessions = req.app_data::<web::Data<Sessions>>().cloned();
        let token = req.cookie(COOKIE).map(|c| c.value().to_owned());
        let req = req.clone();
        Box::pin(async move {
            let sessions = sessions.ok_or_else(|| {
                MonitorError::Internal(anyhow::anyhow!("monitor Sessions are not registered"))
            })?;
            let token = token
                .filter(|t| !t.is_empty())
                .ok_or(MonitorError::LoginRequired)?;
            let caller = sessions.admin_from_token(&token).await?;
            let caller = renew_if_due(&sessions, &req, caller)?;
            Ok(MonitorSession::new(&sessions.auth.settings, caller))
        })
    }
}

/// A renewed session cookie waiting for the response ([`renew_cookie`] sets it).
#[derive(Clone)]
struct Renewed(Cookie<'static>);

/// Renews the session's token when more than [`RENEW_AFTER_SECS`] of its life is used up,
/// leaving the new cookie for [`renew_cookie`]; returns the caller the request continues as.
fn renew_if_due(
    sessions: &Sessions,
    req: &HttpRequest,
    caller: Caller,
) -> Result<Caller, MonitorError> {
    let auth = &sessions.auth;
    let ttl = auth.keys.access_ttl_secs();
    let now = auth.clock.now().timestamp();
    if caller.expires_at - now > ttl - RENEW_AFTER_SECS {
        return Ok(caller);
    }
    let max_secs = crate::settings::secs(auth.settings.monitor_session_max_secs);
    let renewed = service::renew_session(auth, &caller, max_secs)
        .map_err(|e| MonitorError::Internal(anyhow::Error::new(e)))?;
    let Some((token, renewed)) = renewed else {
        return Ok(caller);
    };
    let cookie = sessions.session_cookie(&token, renewed.expires_at - now);
    req.extensions_mut().insert(Renewed(cookie));
    Ok(renewed)
}

/// Middleware of the `/monitor` scope: sends the cookie of a session renewed while handling the
/// request, unless the response sets the session cookie itself (login, logout).
pub async fn renew_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let renewed = res.request().extensions_mut().remove::<Renewed>();
    if let Some(Renewed(cookie)) = renewed
        && !res.response().cookies().any(|c| c.name() == COOKIE)
    {
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserId;

    fn caller() -> Caller {
        Caller {
            id: UserId::from_uuid(uuid::Uuid::new_v4()),
            role: Role::Admin,
            jti: uuid::Uuid::new_v4(),
            expires_at: 0,
            epoch: 0,
            session: uuid::Uuid::new_v4(),
            session_started: 0,
            credential: None,
        }
    }

    fn settings() -> AuthSettings {
        crate::settings::load_from(
            std::path::Path::new("settings"),
            Environment::Test,
            std::iter::empty(),
        )
        .unwrap()
        .auth
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let settings = settings();
        let (a, b) = (caller(), caller());
        let session = MonitorSession::new(&settings, a.clone());
        assert_eq!(session.csrf, MonitorSession::new(&settings, a).csrf);
        assert_ne!(session.csrf, MonitorSession::new(&settings, b.clone()).csrf);
        assert_eq!(session.csrf.len(), 64);
        assert!(session.verify_csrf(Some(&session.csrf)).is_ok());
        let other = MonitorSession::new(&settings, b);
        assert!(session.verify_csrf(Some(&other.csrf)).is_err());
        assert!(session.verify_csrf(None).is_err());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_outside_local_and_test() {
        let cookie = session_cookie(false, "t", 900);
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some("/monitor"));
        assert_eq!(cookie.secure(), Some(false));
        assert_eq!(session_cookie(true, "t", 900).secure(), Some(true));
        assert!(!secure_cookies(Environment::Local) && !secure_cookies(Environment::Test));
        assert!(secure_cookies(Environment::Production));
    }
}

//! Access tokens (JWT, HS256 pinned) and refresh tokens (opaque random strings, stored hashed).
//!
//! `exp`/`nbf` are checked here against the injected clock (with the configured leeway) rather
//! than by `jsonwebtoken`'s system-clock check, so that expiry is tested by moving time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::domain::{LoginEmail, Role, UserId};
use crate::settings::AuthSettings;

/// Longest bearer token we look at; anything larger is refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub role: Role,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The user's token epoch at issue; a token from an older epoch is refused. Tokens issued
    /// before epochs existed carry none and count as epoch 0.
    #[serde(default)]
    pub epoch: i32,
    /// The session a renewed token continues (the `jti` of the token issued at login); absent
    /// on tokens issued at login or refresh, whose session is their own `jti`. Logging out
    /// revokes the whole session, renewals included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// When the user last entered their password (OIDC's `auth_time`); absent means `iat`. A
    /// renewed session never outlives it by more than its absolute maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The client credential the token was issued to (the `client_credentials` grant); absent
    /// on tokens issued to a person. Revoking the credential ends its tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<Uuid>,
}

impl Claims {
    /// The session this token belongs to: [`Claims::sid`], or its own `jti` for a first token.
    pub fn session(&self) -> Uuid {
        self.sid.unwrap_or(self.jti)
    }

    /// When its session began: [`Claims::auth_time`], or `iat` for a first token.
    pub fn session_started(&self) -> i64 {
        self.auth_time.unwrap_or(self.iat)
    }
}

/// What a renewed access token carries over from the one it replaces.
#[derive(Debug, Clone, Copy)]
pub struct Continuation {
    /// The session it continues.
    pub sid: Uuid,
    /// When that session's user entered their password.
    pub auth_time: i64,
    /// Its expiry (unix seconds); at most `now + access TTL`.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is too large")]
    TooLarge,
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

#[derive(Clone)]
pub struct TokenKeys {
    /// Keys [`Self::pseudonym`]: a log line names an account without its email, and the name
    /// cannot be reversed by hashing a list of known emails without the secret.
    pseudonyms: Hmac<Sha256>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: i64,
    leeway: i64,
}

impl TokenKeys {
    pub fn new(settings: &AuthSettings) -> Self {
        super::jwt_hmac::install();
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        // Only HS256: a token whose header names another algorithm (including `none`) fails.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let pseudonyms = Hmac::<Sha256>::new_from_slice(secret)
            .expect("HMAC takes a key of any length")
            .chain_update(b"log pseudonyms\0");
        Self {
            pseudonyms,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: crate::settings::secs(settings.access_token_ttl_secs),
            leeway: crate::settings::secs(settings.leeway_secs),
        }
    }

    /// What log lines call the account a login names instead of its email: 16 hex characters
    /// of an HMAC keyed by `auth.jwt_secret`, the same for every spelling the login accepts, so
    /// failed attempts on one account can be told apart from a spray across many.
    pub fn pseudonym(&self, email: &LoginEmail) -> String {
        let digest = self
            .pseudonyms
            .clone()
            .chain_update(email.throttle_subject().as_bytes())
            .finalize()
            .into_bytes();
        hex::encode(&digest[..8])
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl
    }

    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        epoch: i32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(String, Claims)> {
        self.issue_with(user, role, epoch, now, None, None)
    }

    /// An access token for a partner's machine, issued on client credential `credential`.
    pub fn issue_for_credential(
        &self,
        user: UserId,
        epoch: i32,
        credential: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(String, Claims)> {
        self.issue_with(user, Role::Partner, epoch, now, None, Some(credential))
    }

    /// An access token that continues a session (a sliding session's renewal): the same
    /// session id and `auth_time`, a new `jti`, and the expiry asked for, capped at the TTL.
    pub fn issue_continuing(
        &self,
        user: UserId,
        role: Role,
        epoch: i32,
        now: DateTime<Utc>,
        continuation: Continuation,
    ) -> anyhow::Result<(String, Claims)> {
        self.issue_with(user, role, epoch, now, Some(continuation), None)
    }

    fn issue_with(
        &self,
        user: UserId,
        role: Role,
        epoch: i32,
        now: DateTime<Utc>,
        continuation: Option<Continuation>,
        credential: Option<Uuid>,
    ) -> anyhow::Result<(String, Claims)> {
        let iat = now.timestamp();
        let full = iat + self.access_ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.as_uuid(),
            role,
            jti: Uuid::new_v4(),
            iat,
            nbf: iat,
            exp: continuation.map_or(full, |c| c.expires_at.min(full)),
            epoch,
            sid: continuation.map(|c| c.sid),
            auth_time: continuation.map(|c| c.auth_time),
            cid: credential,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp + self.leeway < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf - self.leeway > now {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// A new opaque refresh token: 32 random bytes, hex-encoded.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// What is stored: SHA-256 of the token. A database leak does not yield usable tokens, and a
/// fast hash is enough because the token has 256 bits of entropy.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(secret: &str) -> AuthSettings {
        AuthSettings {
            jwt_secret: SecretString::from(secret.to_owned()),
            issuer: "iss".into(),
            audience: "aud".into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            leeway_secs: 30,
            registration_enabled: false,
            max_failed_logins: 5,
            login_window_secs: 60,
            user_status_cache_secs: 5,
            monitor_session_max_secs: 28800,
            session_retention_days: 7,
            max_credentials_per_partner: 5,
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    #[test]
    fn a_token_verifies_until_it_expires_with_leeway() {
        let keys = TokenKeys::new(&settings(SECRET));
        let now = Utc::now();
        let (token, claims) = keys
            .issue(UserId::from_uuid(Uuid::new_v4()), Role::Partner, 0, now)
            .unwrap();
        assert_eq!(keys.verify(&token, now).unwrap().jti, claims.jti);
        let just_after = now + chrono::Duration::seconds(900 + 29);
        assert!(keys.verify(&token, just_after).is_ok());
        let later = now + chrono::Duration::seconds(900 + 31);
        assert!(matches!(
            keys.verify(&token, later),
            Err(TokenError::Expired)
        ));
        let before = now - chrono::Duration::seconds(31);
        assert!(matches!(
            keys.verify(&token, before),
            Err(TokenError::NotYetValid)
        ));
    }

    #[test]
    fn tokens_from_another_key_or_algorithm_or_none_are_refused() {
        let keys = TokenKeys::new(&settings(SECRET));
        let other = TokenKeys::new(&settings("another-secret-another-secret-another"));
        let now = Utc::now();
        let (foreign, _) = other
            .issue(UserId::from_uuid(Uuid::new_v4()), Role::Admin, 0, now)
            .unwrap();
        assert!(matches!(
            keys.verify(&foreign, now),
            Err(TokenError::Invalid(_))
        ));

        let (good, claims) = keys
            .issue(UserId::from_uuid(Uuid::new_v4()), Role::Admin, 0, now)
            .unwrap();
        let payload = good.split('.').nth(1).unwrap();
        // alg: none with the same claims and no signature.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(keys.verify(&none, now).is_err());
        // HS512 signed with the right secret is still refused: the algorithm is pinned.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(keys.verify(&hs512, now).is_err());
        assert!(matches!(
            keys.verify(&"a".repeat(5000), now),
            Err(TokenError::TooLarge)
        ));
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let keys = TokenKeys::new(&settings(SECRET));
        let mut s = settings(SECRET);
        s.audience = "someone-else".into();
        let (token, _) = TokenKeys::new(&s)
            .issue(
                UserId::from_uuid(Uuid::new_v4()),
                Role::Admin,
                0,
                Utc::now(),
            )
            .unwrap();
        assert!(keys.verify(&token, Utc::now()).is_err());
        let mut s = settings(SECRET);
        s.issuer = "someone-else".into();
        let (token, _) = TokenKeys::new(&s)
            .issue(
                UserId::from_uuid(Uuid::new_v4()),
                Role::Admin,
                0,
                Utc::now(),
            )
            .unwrap();
        assert!(keys.verify(&token, Utc::now()).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_refresh_token());
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_eq!(hash_refresh_token(&a).len(), 32);
    }
}

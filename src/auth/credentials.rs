//! Client credentials: a partner's machines authenticate with a `client_id` and a
//! `client_secret` (OAuth 2.0 `client_credentials`, RFC 6749 §4.4) and get an access token, with
//! no refresh token: a machine asks again when its token expires.
//!
//! The secret is shown once, at creation, and stored as its SHA-256. It is 256 random bits, so
//! neither a slow hash (argon2id, as for passwords, whose cost exists to make guessing
//! low-entropy secrets expensive) nor a key would make a leaked hash any easier to keep safe:
//! inverting SHA-256 on a uniformly random 256-bit input is out of reach either way. A fast hash
//! also keeps the token endpoint cheap, so it is not a lever for exhausting the CPU, and needs no
//! server-side key whose rotation would invalidate every credential.
//!
//! A token issued on a credential names it (`cid`); the per-request check refuses it once the
//! credential is revoked, through the same Redis status cache and per-process memo as a
//! disabled user, so a revocation holds on every instance within the memo's second.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Auth;
use super::domain::{PartnerId, UserId};
use super::error::AuthError;
use super::store::{self, CredentialInsert, CredentialRow, NewCredential};
use super::throttle::{Attempt, LoginThrottle};

/// A credential's name, for the partner to tell its credentials apart: 1 to 100 characters
/// (spaces at the ends trimmed), no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialName(String);

impl CredentialName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("is required".into());
        }
        if name.chars().count() > 100 {
            return Err("must be at most 100 characters".into());
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CredentialName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl<'de> Deserialize<'de> for CredentialName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A credential as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialView {
    pub id: Uuid,
    /// The partner whose machines use it.
    pub partner_id: Uuid,
    pub name: String,
    /// Sent as the `client_id` (or the HTTP Basic user name) to `POST /api/v1/auth/token`.
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    /// When a token was last issued on it; `null` until then.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<CredentialRow> for CredentialView {
    fn from(r: CredentialRow) -> Self {
        Self {
            id: r.id,
            partner_id: r.partner_id,
            name: r.name,
            client_id: r.client_id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// A new credential, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredential {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub name: String,
    pub client_id: String,
    /// Shown once: store it now. Only its hash is kept.
    pub client_secret: String,
    pub created_at: DateTime<Utc>,
    /// Always `null` on creation.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Longest client id or secret looked at; anything longer is refused before any lookup.
const MAX_CLIENT_FIELD: usize = 256;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a credential for `partner`, within `auth.max_credentials_per_partner`.
#[tracing::instrument(skip(auth, name), fields(partner_id = %partner))]
pub async fn create(
    auth: &Auth,
    partner: PartnerId,
    name: &CredentialName,
) -> Result<CreatedCredential, AuthError> {
    let id = Uuid::now_v7();
    // Prefixes make a leaked value recognisable to secret scanners and to people.
    let client_id = format!("ccs_{}", random_hex(12));
    let client_secret = format!("ccs_secret_{}", random_hex(32));
    // PostgreSQL keeps microseconds: answer with what a later read returns.
    let now = auth.clock.now().trunc_subsecs(6);
    let max = auth.settings.max_credentials_per_partner;
    let inserted = store::insert_credential(
        &auth.db,
        &NewCredential {
            id,
            partner_id: partner.as_uuid(),
            name: name.as_str(),
            client_id: &client_id,
            secret_hash: &hash_secret(&client_secret),
            created_at: now,
        },
        i64::from(max),
    )
    .await?;
    match inserted {
        CredentialInsert::Inserted => {}
        CredentialInsert::CapReached => return Err(AuthError::CredentialLimit(max)),
        CredentialInsert::NoPartner => return Err(AuthError::PartnerNotFound),
    }
    tracing::info!(credential_id = %id, "client credential created");
    Ok(CreatedCredential {
        id,
        partner_id: partner.as_uuid(),
        name: name.as_str().to_owned(),
        client_id,
        client_secret,
        created_at: now,
        last_used_at: None,
    })
}

/// A partner's live credentials, oldest first.
pub async fn list(auth: &Auth, partner: PartnerId) -> Result<Vec<CredentialView>, AuthError> {
    Ok(store::list_credentials(&auth.db, partner.as_uuid())
        .await?
        .into_iter()
        .map(CredentialView::from)
        .collect())
}

/// Revokes credential `id`: of `owner` when given (a partner revoking its own), any partner's
/// otherwise (an admin). Tokens issued on it stop working on every instance within a second.
#[tracing::instrument(skip(auth))]
pub async fn revoke(auth: &Auth, id: Uuid, owner: Option<PartnerId>) -> Result<(), AuthError> {
    let partner = store::revoke_credential(
        &auth.db,
        id,
        owner.map(PartnerId::as_uuid),
        auth.clock.now(),
    )
    .await?
    .ok_or(AuthError::CredentialNotFound)?;
    super::service::publish_credential_revoked(auth, UserId::from_uuid(partner), id).await;
    tracing::info!(credential_id = %id, partner_id = %partner, "client credential revoked");
    Ok(())
}

/// The client's claimed identity, from HTTP Basic or from the form.
#[derive(Debug)]
pub struct ClientAuth {
    pub client_id: String,
    pub client_secret: String,
}

/// Why the token endpoint refuses a `client_credentials` grant (RFC 6749 §5.2, plus the
/// throttle and our own faults, which are answered as problems like everywhere else).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client, wrong secret, revoked credential or disabled partner: one answer.
    #[error("invalid_client")]
    InvalidClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("too many failed client authentications")]
    Throttled {
        retry_after_secs: u64,
        /// The client id's own limit is reached, not only the address's.
        client: bool,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        GrantError::Unexpected(e.into())
    }
}

/// An access token issued to a client (RFC 6749 §5.1); no refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Authenticates a client and issues it an access token. Every attempt is counted by the login
/// throttle (per client id and per IP) before the secret is checked; a success gives its slot
/// back, so only failures accumulate.
#[tracing::instrument(skip(auth, client), fields(ip = %ip))]
pub async fn grant(auth: &Auth, client: &ClientAuth, ip: &str) -> Result<ClientToken, GrantError> {
    if client.client_id.len() > MAX_CLIENT_FIELD || client.client_secret.len() > MAX_CLIENT_FIELD {
        return Err(GrantError::InvalidClient);
    }
    let throttle = LoginThrottle::for_client(auth, &client.client_id, ip);
    if let Attempt::Blocked {
        retry_after_secs,
        account,
    } = throttle.reserve().await
    {
        return Err(GrantError::Throttled {
            retry_after_secs,
            client: account,
        });
    }
    let row = store::find_client(&auth.db, &client.client_id).await?;
    let presented = hash_secret(&client.client_secret);
    let Some(row) = row.filter(|r| same_digest(&r.secret_hash, &presented)) else {
        tracing::info!("client authentication failed");
        return Err(GrantError::InvalidClient);
    };
    let Some(epoch) = row.token_epoch else {
        tracing::info!(partner_id = %row.partner_id, "client of a disabled partner refused");
        return Err(GrantError::InvalidClient);
    };
    throttle.release().await;
    let now = auth.clock.now();
    let (access_token, _) =
        auth.keys
            .issue_for_credential(UserId::from_uuid(row.partner_id), epoch, row.id, now)?;
    store::touch_credential(&auth.db, row.id, now).await?;
    tracing::info!(credential_id = %row.id, partner_id = %row.partner_id, "client token issued");
    Ok(ClientToken {
        access_token,
        token_type: "Bearer",
        expires_in: auth.keys.access_ttl_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_trimmed_bounded_and_printable() {
        assert_eq!(
            CredentialName::parse("  billing server ").unwrap().as_str(),
            "billing server"
        );
        assert!(CredentialName::parse("   ").is_err());
        assert!(CredentialName::parse(&"x".repeat(101)).is_err());
        assert!(CredentialName::parse(&"é".repeat(100)).is_ok());
        assert!(CredentialName::parse("a\nb").is_err());
    }

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = hash_secret("one");
        assert!(same_digest(&a, &hash_secret("one")));
        assert!(!same_digest(&a, &hash_secret("two")));
        assert!(!same_digest(&a, &a[..31]));
    }
}

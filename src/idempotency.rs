//! Idempotent POSTs: the `Idempotency-Key` request header, and the one table
//! (`idempotency_keys`) that remembers, per partner and [`Scope`], which resource a key created
//! and a hash of the request that created it. A retried request with the same key and the same
//! parsed body gets the original resource back (200); the same key with another body is refused
//! (422 `/problems/idempotency-key-reused`); a key of one scope never clashes with the same key
//! of another.
//!
//! Shared core: imports no capability. Each capability hashes its own parsed request with
//! [`RequestHash`], claims the key with [`Keys::claim`] inside the transaction that creates the
//! resource (so the key and the resource commit together or not at all) and reads the original
//! back itself on a replay. Keys expire after `conversions.idempotency_ttl_secs`;
//! `prune_expired_data` deletes them a day or more later. The table holds no foreign key to what
//! a key created, so that the tables of those resources stay free to be partitioned.

use std::fmt;

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use bigdecimal::BigDecimal;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::ApiError;

/// A valid `Idempotency-Key`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a header value is not an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {max} printable ASCII characters", max = IdempotencyKey::MAX_LEN)]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// Longest key accepted, in characters (all ASCII).
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let printable = raw.bytes().all(|b| (b' '..=b'~').contains(&b));
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !printable {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

impl utoipa::PartialSchema for IdempotencyKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX_LEN))
            // Printable ASCII; no space at either end, since HTTP trims them off.
            .pattern(Some("^[!-~]([ -~]*[!-~])?$"))
            .description(Some(
                "1 to 255 printable ASCII characters, unique per intended operation (an order id)",
            ))
            .examples([json!("6f1c2a4e-order-1234")])
            .into()
    }
}

impl utoipa::ToSchema for IdempotencyKey {}

/// The `Idempotency-Key` header of a request, when sent. Extracting it fails with a 422 naming
/// the header when the value is not a key. Put it after the body in a handler's arguments, so
/// that a bad body is reported first.
#[derive(Debug, Clone)]
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl IdempotencyHeader {
    pub fn key(&self) -> Option<&IdempotencyKey> {
        self.0.as_ref()
    }
}

impl FromRequest for IdempotencyHeader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req
            .headers()
            .get("Idempotency-Key")
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|raw| IdempotencyKey::parse(raw).ok())
                    .ok_or_else(|| {
                        ApiError::validation("Idempotency-Key", InvalidIdempotencyKey.to_string())
                    })
            })
            .transpose();
        std::future::ready(key.map(Self))
    }
}

/// What a key answers for: the operation it makes idempotent. The same key may be used once in
/// each scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /conversions`: the key names a conversion.
    Conversion,
    /// `POST /conversions/batch`: the key names a batch.
    Batch,
    /// `POST /quotes`: the key names a quote.
    Quote,
    /// `POST /webhooks`: the key names a webhook endpoint.
    WebhookEndpoint,
}

impl Scope {
    /// As stored in `idempotency_keys.scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Conversion => "conversion",
            Scope::Batch => "batch",
            Scope::Quote => "quote",
            Scope::WebhookEndpoint => "webhook_endpoint",
        }
    }
}

/// What a key remembers of a request: SHA-256 over the request's parsed fields, each written
/// canonically and length-prefixed, so that `"100.0"` and `"100.00"` are the same request and
/// no two different requests write the same bytes. A caller writes its fields in a fixed order.
///
/// The encoding (the migration that made `idempotency_keys` rewrote older keys' hashes in SQL
/// with it, so keep it stable): a text is its UTF-8 length as 8 bytes big-endian, then its bytes;
/// an absent optional field is the byte 0, a present one the byte 1 and then the field; a decimal
/// is the text of its value without trailing zeros (`100`, `0.5`).
pub struct RequestHash(Sha256);

impl Default for RequestHash {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestHash {
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    pub fn text(mut self, value: &str) -> Self {
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value.as_bytes());
        self
    }

    pub fn decimal(self, value: &BigDecimal) -> Self {
        self.text(&canonical_decimal(value))
    }

    pub fn uuid(self, value: Uuid) -> Self {
        self.text(&value.hyphenated().to_string())
    }

    pub fn optional<T>(mut self, value: Option<T>, write: impl FnOnce(Self, T) -> Self) -> Self {
        match value {
            None => {
                self.0.update([0u8]);
                self
            }
            Some(v) => {
                self.0.update([1u8]);
                write(self, v)
            }
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// A decimal as its value, whatever its scale: `100.00` → `100`, `0.50` → `0.5`. The same text
/// as PostgreSQL's `trim_scale(x)::text`.
fn canonical_decimal(value: &BigDecimal) -> String {
    crate::money::plain(&crate::money::normalized(value))
}

/// The same key with another request: refused, whatever the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this Idempotency-Key was used with a different request")]
pub struct KeyReused;

impl From<KeyReused> for ApiError {
    fn from(_: KeyReused) -> Self {
        ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: "this Idempotency-Key was already used with a different request body".into(),
        }
    }
}

/// What [`Keys::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The key was free (or expired) and now names the new resource.
    New,
    /// The same request used the key before: the resource it created.
    Replay(Uuid),
    /// Another request used the key before.
    Reused,
}

impl Claimed {
    /// `None` for a new claim, the original resource for a replay, [`KeyReused`] otherwise.
    pub fn replay(self) -> Result<Option<Uuid>, KeyReused> {
        match self {
            Claimed::New => Ok(None),
            Claimed::Replay(id) => Ok(Some(id)),
            Claimed::Reused => Err(KeyReused),
        }
    }
}

/// A key to claim for a new resource, with what it remembers of the request.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub scope: Scope,
    pub partner_id: Uuid,
    pub key: &'a IdempotencyKey,
    pub request_hash: &'a [u8],
    /// The resource the request is about to create.
    pub resource_id: Uuid,
}

/// How long keys are remembered (`conversions.idempotency_ttl_secs`). Cheap to copy; each
/// capability that takes keys holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    ttl: TimeDelta,
}

impl Keys {
    pub fn new(ttl_secs: u64) -> Self {
        Self {
            ttl: TimeDelta::seconds(crate::settings::secs(ttl_secs)),
        }
    }

    /// When a key claimed at `now` is forgotten.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.ttl
    }

    /// Claims a key in the caller's transaction, which then creates the resource. A free or
    /// expired key is taken; a held one is reported with the resource it names when the request
    /// hashes the same. A concurrent request with the same key waits on the primary key until
    /// the first commits (then sees its key) or rolls back (then takes it).
    pub async fn claim(
        &self,
        conn: &mut PgConnection,
        claim: Claim<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claimed, sqlx::Error> {
        let scope = claim.scope.as_str();
        let key = claim.key.as_str();
        // A held key can vanish between the two statements (pruned as expired): then the claim
        // is tried once more, and finds the key free.
        for _ in 0..2 {
            let taken = sqlx::query_scalar!(
                r#"INSERT INTO idempotency_keys AS k
                       (partner_id, scope, key, request_hash, resource_id, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (partner_id, scope, key) DO UPDATE
                       SET request_hash = EXCLUDED.request_hash, resource_id = EXCLUDED.resource_id,
                           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
                       WHERE k.expires_at <= EXCLUDED.created_at
                   RETURNING resource_id"#,
                claim.partner_id,
                scope,
                key,
                claim.request_hash,
                claim.resource_id,
                now,
                self.expires_at(now),
            )
            .fetch_optional(&mut *conn)
            .await?;
            if taken.is_some() {
                return Ok(Claimed::New);
            }
            // A new statement, so it sees the key a concurrent request committed meanwhile.
            if let Some(held) = find(&mut *conn, claim.partner_id, claim.scope, claim.key).await? {
                return Ok(held.answer(claim.request_hash));
            }
        }
        Err(sqlx::Error::Protocol(
            "an Idempotency-Key was held and then vanished, twice".into(),
        ))
    }
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    pub request_hash: Vec<u8>,
    pub resource_id: Uuid,
}

impl HeldKey {
    /// What this key means for a request hashing to `request_hash`.
    pub fn answer(&self, request_hash: &[u8]) -> Claimed {
        if self.request_hash == request_hash {
            Claimed::Replay(self.resource_id)
        } else {
            Claimed::Reused
        }
    }
}

/// The key `(partner, scope, key)` if held (expired or not).
pub async fn find<'c, E>(
    db: E,
    partner_id: Uuid,
    scope: Scope,
    key: &IdempotencyKey,
) -> Result<Option<HeldKey>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    sqlx::query_as!(
        HeldKey,
        "SELECT request_hash, resource_id FROM idempotency_keys
         WHERE partner_id = $1 AND scope = $2 AND key = $3",
        partner_id,
        scope.as_str(),
        key.as_str(),
    )
    .fetch_optional(db)
    .await
}

/// Deletes at most `limit` keys, of every scope, that expired before `before`; returns how
/// many. An expired key is already free to be claimed again, so this only keeps the table small.
pub async fn delete_expired_batch(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE (partner_id, scope, key) IN (
             SELECT partner_id, scope, key FROM idempotency_keys WHERE expires_at < $1 LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        for good in ["a", "order 1234", "~!", &"k".repeat(255)] {
            assert_eq!(IdempotencyKey::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "tab\there", "line\nbreak", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn decimal(text: &str) -> BigDecimal {
        text.parse().unwrap()
    }

    #[test]
    fn a_decimal_is_hashed_by_its_value_not_its_scale() {
        for (a, b) in [("100.0", "100.00"), ("100", "1E+2"), ("0.50", "0.5")] {
            let hash = |t| RequestHash::new().decimal(&decimal(t)).finish();
            assert_eq!(hash(a), hash(b), "{a} vs {b}");
        }
        assert_eq!(canonical_decimal(&decimal("100.00")), "100");
        assert_eq!(canonical_decimal(&decimal("0.500")), "0.5");
        assert_eq!(canonical_decimal(&decimal("1200")), "1200");
        assert_ne!(
            RequestHash::new().decimal(&decimal("100")).finish(),
            RequestHash::new().decimal(&decimal("10")).finish()
        );
    }

    #[test]
    fn field_boundaries_and_absent_fields_count() {
        let two = |a: &str, b: &str| RequestHash::new().text(a).text(b).finish();
        assert_ne!(two("EU", "RUSD"), two("EUR", "USD"));
        let opt = |v: Option<&str>| RequestHash::new().optional(v, RequestHash::text).finish();
        assert_ne!(opt(None), opt(Some("")));
        assert_ne!(opt(Some("a")), opt(Some("b")));
        assert_eq!(opt(Some("a")), opt(Some("a")));
    }

    /// The encoding the migration to `idempotency_keys` reproduced in SQL: pinned, so that a
    /// change to it is a deliberate one.
    #[test]
    fn the_encoding_is_the_documented_one() {
        let quote = Uuid::nil();
        let hash = RequestHash::new()
            .text("EUR")
            .decimal(&decimal("5.00"))
            .optional(Some(quote), RequestHash::uuid)
            .optional(None::<Uuid>, RequestHash::uuid)
            .finish();
        let mut bytes = Vec::new();
        for text in ["EUR", "5"] {
            bytes.extend((text.len() as u64).to_be_bytes());
            bytes.extend(text.as_bytes());
        }
        bytes.push(1);
        bytes.extend(36u64.to_be_bytes());
        bytes.extend(quote.hyphenated().to_string().as_bytes());
        bytes.push(0);
        assert_eq!(hash, Sha256::digest(&bytes).to_vec());
    }
}

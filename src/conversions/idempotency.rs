//! `IdempotencyKey`: the `Idempotency-Key` request header of `POST /conversions` and
//! `POST /conversions/batch`, parsed once at the edge. A key is 1 to 255 printable ASCII
//! characters (HTTP trims spaces at the ends; inside they are kept); the same key and body
//! return the original answer, see `conversions.idempotency_ttl_secs`.
//!
//! Keys are remembered per partner in two tables, one per [`KeyScope`]: a conversion's key names
//! the conversion (`conversion_idempotency_keys`, also claimed inside the one-statement insert of
//! [`super::store::create`]), a batch's key names the batch (`conversion_batch_idempotency_keys`).
//! They stay two tables because each key's foreign key names what the key created: one table with
//! a kind column would need two nullable references and a check tying them to the kind, for no
//! gain in what is stored. One [`claim`] serves both.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Conversions;
use super::domain::ConversionError;
use crate::auth::PartnerId;

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

/// What a key answers for: a single conversion or a whole batch. Each has its own table, and a
/// key of one scope does not clash with the same key of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// `POST /conversions`: the key names a conversion.
    Conversion,
    /// `POST /conversions/batch`: the key names a batch.
    Batch,
}

/// When a key claimed `now` is forgotten (`conversions.idempotency_ttl_secs`).
pub(super) fn expires_at(conversions: &Conversions, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::seconds(crate::settings::secs(
        conversions.settings.idempotency_ttl_secs,
    ))
}

/// A key to claim for the new conversion or batch `id`, with what it remembers of the request.
pub(super) struct Claim<'a> {
    pub scope: KeyScope,
    pub partner: PartnerId,
    pub key: &'a str,
    pub request_hash: &'a [u8],
    pub id: Uuid,
}

/// Claims a key for `claim.id` in the caller's transaction. `None` when the key was free (or
/// expired) and is now taken; `Some(original)` when the same request used it before; a
/// different request under the same key is refused. A concurrent request with the same key
/// waits on the unique index until the first commits.
pub(super) async fn claim(
    conversions: &Conversions,
    conn: &mut PgConnection,
    claim: Claim<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, ConversionError> {
    let expires_at = expires_at(conversions, now);
    match claim_row(conn, &claim, now, expires_at).await? {
        None => Ok(None),
        Some((stored_hash, _)) if stored_hash != claim.request_hash => {
            Err(ConversionError::IdempotencyMismatch)
        }
        Some((_, existing)) => Ok(Some(existing)),
    }
}

/// The SQL of [`claim`]: an expired key is deleted, then the key is inserted unless held, and a
/// held key's `(request_hash, id)` is read. The statements are the same for both scopes but for
/// the table and the column naming what the key created (checked SQL needs literal names).
async fn claim_row(
    conn: &mut PgConnection,
    claim: &Claim<'_>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Option<(Vec<u8>, Uuid)>, sqlx::Error> {
    let (partner, key, hash, id) = (
        claim.partner.as_uuid(),
        claim.key,
        claim.request_hash,
        claim.id,
    );
    let inserted = match claim.scope {
        KeyScope::Conversion => {
            sqlx::query!(
                "DELETE FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2 AND expires_at <= $3",
                partner,
                key,
                now,
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query!(
                "INSERT INTO conversion_idempotency_keys (partner_id, key, request_hash, conversion_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partner_id, key) DO NOTHING",
                partner,
                key,
                hash,
                id,
                now,
                expires_at,
            )
            .execute(&mut *conn)
            .await?
        }
        KeyScope::Batch => {
            sqlx::query!(
                "DELETE FROM conversion_batch_idempotency_keys WHERE partner_id = $1 AND key = $2 AND expires_at <= $3",
                partner,
                key,
                now,
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query!(
                "INSERT INTO conversion_batch_idempotency_keys (partner_id, key, request_hash, batch_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partner_id, key) DO NOTHING",
                partner,
                key,
                hash,
                id,
                now,
                expires_at,
            )
            .execute(&mut *conn)
            .await?
        }
    };
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    match claim.scope {
        KeyScope::Conversion => find_conversion_key(&mut *conn, claim.partner, key).await,
        KeyScope::Batch => Ok(sqlx::query!(
            "SELECT request_hash, batch_id FROM conversion_batch_idempotency_keys WHERE partner_id = $1 AND key = $2",
            partner,
            key,
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| (row.request_hash, row.batch_id))),
    }
}

/// The `(request_hash, conversion_id)` a single conversion's key holds, if any.
pub async fn find_conversion_key<'c, E>(
    db: E,
    partner: PartnerId,
    key: &str,
) -> Result<Option<(Vec<u8>, Uuid)>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    let row = sqlx::query!(
        "SELECT request_hash, conversion_id FROM conversion_idempotency_keys WHERE partner_id = $1 AND key = $2",
        partner.as_uuid(),
        key,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.request_hash, r.conversion_id)))
}

/// Deletes at most `limit` keys of each scope that expired before `before`; returns how many.
/// An expired key is already free to reuse (a claim replaces it), so this only reclaims space.
pub async fn delete_expired_batch(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let single = sqlx::query!(
        "DELETE FROM conversion_idempotency_keys WHERE (partner_id, key) IN (
             SELECT partner_id, key FROM conversion_idempotency_keys
             WHERE expires_at < $1 LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    let batches = sqlx::query!(
        "DELETE FROM conversion_batch_idempotency_keys WHERE (partner_id, key) IN (
             SELECT partner_id, key FROM conversion_batch_idempotency_keys
             WHERE expires_at < $1 LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(single.rows_affected() + batches.rows_affected())
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
}

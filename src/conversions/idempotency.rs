//! `IdempotencyKey`: the `Idempotency-Key` request header of `POST /conversions` and
//! `POST /conversions/batch`, parsed once at the edge. A key is 1 to 255 printable ASCII
//! characters (HTTP trims spaces at the ends; inside they are kept); the same key and body
//! return the original answer, see `conversions.idempotency_ttl_secs`.

use std::fmt;

use serde_json::json;

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

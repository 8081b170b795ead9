//! What a conversion is, for every file of this module and for its readers: its status, its
//! view in the API, its errors and how they answer over HTTP. Imports nothing of this module,
//! so that creating, batching, storing and reading conversions all build on it without a circle.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::currencies::{CurrencyCode, CurrencyError};
use crate::error::ApiError;
use crate::money;

/// Stored as text in `conversions.status` (a CHECK constraint lists the values); a value this
/// enum does not know fails to decode instead of being read as some default status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Status {
    Temporary,
    Permanent,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Temporary => "temporary",
            Status::Permanent => "permanent",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    #[error(transparent)]
    Rates(#[from] crate::rates::RatesError),
    /// The quote's lock ended (or it never held one).
    #[error("quote {id} expired at {expires_at}")]
    QuoteExpired { id: Uuid, expires_at: DateTime<Utc> },
    /// A fixed-amount quote was already converted on.
    #[error("quote {0} was already converted on")]
    QuoteUsed(Uuid),
    /// Items of a batch that cannot be converted (the batch stores nothing).
    #[error("{} of {count} items are invalid; nothing was converted", errors.len())]
    InvalidItems {
        count: usize,
        errors: Vec<ItemError>,
    },
    #[error(transparent)]
    IdempotencyKeyReused(#[from] crate::idempotency::KeyReused),
    #[error("no such conversion")]
    NotFound,
    #[error("a {0} conversion cannot be cancelled")]
    NotCancellable(&'static str),
    /// The holding period is over: the conversion is about to become permanent, even though
    /// the finalize job may not have run yet.
    #[error(
        "the holding period ended at {finalizes_at}; the conversion is being finalized and can no longer be cancelled"
    )]
    Finalizing { finalizes_at: DateTime<Utc> },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConversionError {
    fn from(e: sqlx::Error) -> Self {
        ConversionError::Unexpected(e.into())
    }
}

/// A conversion as the API shows it. Decimals are strings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionView {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    /// In the source currency, at its minor units.
    #[schema(value_type = String, example = "100.00")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub amount: BigDecimal,
    /// Units of `to` per one `from`, full precision.
    #[schema(value_type = String, example = "0.0205")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub rate: BigDecimal,
    /// `amount × rate`, rounded toward zero to the target currency's minor units.
    #[schema(value_type = String, example = "2.05")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub result: BigDecimal,
    /// The provider's timestamp of the rate used.
    pub rate_as_of: DateTime<Utc>,
    pub rate_provider: String,
    /// The sources whose values made the reference rate: with `rates.sources`, those whose
    /// consensus it was (both sides of a cross rate); otherwise the one provider (`seed` for
    /// the embedded history). Empty for a conversion made before this was recorded.
    #[schema(example = json!(["ecb", "frankfurter", "oxr"]))]
    pub rate_sources: Vec<String>,
    /// Whether the rate was older than `rates.max_age` (only when stale rates are allowed).
    pub stale_rate: bool,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub finalizes_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The quote (rate lock) whose rate was used, if any.
    pub quote_id: Option<Uuid>,
    /// How the rate was made: the reference rate, the partner's markup, the lock's spread, and
    /// what they came to. Stored with the conversion, never recomputed.
    pub rate_details: crate::rates::pricing::RateBreakdown,
}

/// What is wrong with one item of a batch: the problem the same conversion sent alone would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Position in `items`, from 0.
    pub index: usize,
    /// The item's field (`from`, `to`, `amount`, `quote_id`).
    pub field: String,
    pub message: String,
    /// The problem type of the same fault in a single request (`/problems/…`).
    pub problem_type: String,
}

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid {
        field,
        message: message.into(),
    }
}

impl From<ConversionError> for ApiError {
    fn from(e: ConversionError) -> Self {
        use ConversionError as C;
        match e {
            C::Invalid { field, message } => ApiError::validation(field, message),
            C::Currency(e) => e.into(),
            C::Rates(e) => e.into(),
            e @ C::QuoteExpired { .. } => ApiError::ConflictAs {
                slug: "quote-expired",
                detail: e.to_string(),
            },
            e @ C::QuoteUsed(_) => ApiError::ConflictAs {
                slug: "quote-used",
                detail: e.to_string(),
            },
            C::InvalidItems { count, errors } => ApiError::Validation {
                detail: format!(
                    "{} of {count} items are invalid; nothing was converted",
                    errors.len()
                ),
                errors: errors
                    .into_iter()
                    .map(|e| {
                        crate::error::FieldError::new(
                            format!("items[{}].{}", e.index, e.field),
                            e.message,
                        )
                        .with_type(e.problem_type)
                    })
                    .collect(),
            },
            C::IdempotencyKeyReused(e) => e.into(),
            C::NotFound => ApiError::NotFound("no such conversion".into()),
            C::NotCancellable(status) => {
                ApiError::Conflict(format!("a {status} conversion cannot be cancelled"))
            }
            e @ C::Finalizing { .. } => ApiError::ConflictAs {
                slug: "conversion-finalizing",
                detail: e.to_string(),
            },
            C::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

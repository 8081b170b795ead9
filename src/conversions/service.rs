//! A conversion as the API shows it, its errors, and the use cases after its creation: read,
//! cancel, finalize. Creating one is [`super::create`] (a batch: [`super::batch`]).

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Conversions;
use super::store::{self, ConversionRow};
use crate::auth::PartnerId;
use crate::currencies::{CurrencyCode, CurrencyError};
use crate::error::ApiError;
use crate::money;
use crate::webhooks::EventType;

/// Conversions finalized per statement; small batches keep row locks short.
pub const FINALIZE_BATCH: i64 = 500;

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
        errors: Vec<super::batch::ItemError>,
    },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
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
    /// `amount × rate`, rounded half-even to the target currency's minor units.
    #[schema(value_type = String, example = "2.05")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub result: BigDecimal,
    /// The provider's timestamp of the rate used.
    pub rate_as_of: DateTime<Utc>,
    pub rate_provider: String,
    /// Whether the rate was older than `rates.max_age` (only when stale rates are allowed).
    pub stale_rate: bool,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub finalizes_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The quote (rate lock) whose rate was used, if any.
    pub quote_id: Option<Uuid>,
}

impl From<ConversionRow> for ConversionView {
    fn from(r: ConversionRow) -> Self {
        Self {
            id: r.id,
            partner_id: r.partner_id,
            from: r.from_currency,
            to: r.to_currency,
            // PostgreSQL may hand NUMERIC back without trailing zeros; show money at the
            // currency's scale ("5.00", not "5").
            amount: money::round_to_minor_units(&r.amount, r.from_minor_units),
            rate: r.rate.normalized(),
            result: money::round_to_minor_units(&r.result, r.to_minor_units),
            rate_as_of: r.rate_as_of,
            rate_provider: r.rate_provider,
            stale_rate: r.stale_rate,
            status: r.status,
            created_at: r.created_at,
            finalizes_at: r.finalizes_at,
            finalized_at: r.finalized_at,
            cancelled_at: r.cancelled_at,
            quote_id: r.quote_id,
        }
    }
}

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid {
        field,
        message: message.into(),
    }
}

/// A conversion visible to the caller: partners see only their own (another partner's is
/// "not found", never "forbidden", so existence does not leak).
pub async fn get(
    conversions: &Conversions,
    id: Uuid,
    partner: Option<PartnerId>,
) -> Result<ConversionView, ConversionError> {
    let row = store::find(&conversions.db, id)
        .await?
        .ok_or(ConversionError::NotFound)?;
    if partner.is_some_and(|p| p.as_uuid() != row.partner_id) {
        return Err(ConversionError::NotFound);
    }
    Ok(row.into())
}

pub async fn cancel(
    conversions: &Conversions,
    id: Uuid,
    partner: PartnerId,
) -> Result<ConversionView, ConversionError> {
    let now = conversions.clock.now();
    let mut tx = conversions.db.begin().await?;
    if let Some(row) = store::cancel(&mut tx, id, partner, now).await? {
        let view = ConversionView::from(row);
        crate::webhooks::outbox::record(
            &mut tx,
            EventType::ConversionCancelled,
            now,
            [(partner, &view)],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(conversion_id = %id, "conversion cancelled");
        return Ok(view);
    }
    tx.rollback().await?;
    // Why not: missing/foreign (404), already final, or past its holding period.
    let current = get(conversions, id, Some(partner)).await?;
    match current.status {
        Status::Cancelled => Ok(current),
        Status::Permanent => Err(ConversionError::NotCancellable("permanent")),
        Status::Temporary => Err(ConversionError::Finalizing {
            finalizes_at: current.finalizes_at,
        }),
    }
}

/// Makes every due temporary conversion permanent, in batches. Idempotent: a second run finds
/// nothing to do.
pub async fn finalize_due(conversions: &Conversions) -> anyhow::Result<u64> {
    let now = conversions.clock.now();
    let mut total = 0;
    loop {
        // Each batch commits with its `conversion.finalized` events; delivery happens later,
        // outside this transaction.
        let mut tx = conversions.db.begin().await?;
        let rows = store::finalize_due(&mut tx, now, FINALIZE_BATCH).await?;
        let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let views: Vec<ConversionView> = rows.into_iter().map(ConversionView::from).collect();
        crate::webhooks::outbox::record(
            &mut tx,
            EventType::ConversionFinalized,
            now,
            views
                .iter()
                .map(|v| (PartnerId::from_uuid(v.partner_id), v)),
        )
        .await?;
        tx.commit().await?;
        total += n;
        if n < u64::try_from(FINALIZE_BATCH).unwrap_or(u64::MAX) {
            break;
        }
    }
    if total > 0 {
        tracing::info!(finalized = total, "conversions finalized");
    }
    Ok(total)
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
            C::IdempotencyMismatch => ApiError::Unprocessable {
                slug: "idempotency-key-reused",
                detail: "this Idempotency-Key was already used with a different request body"
                    .into(),
            },
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

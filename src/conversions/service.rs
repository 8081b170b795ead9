//! Conversion use cases: convert (idempotent), read, cancel, finalize.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, ConversionRow};
use crate::currencies::{CurrencyCode, CurrencyError, service as currencies};
use crate::error::ApiError;
use crate::money::{self, Amount};
use crate::settings::StaleRatePolicy;
use crate::state::AppState;

/// Conversions finalized per statement; small batches keep row locks short.
pub const FINALIZE_BATCH: i64 = 500;

/// Stored as text in `conversions.status` (a CHECK constraint lists the values); a value this
/// enum does not know fails to decode instead of being read as some default status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Status {
    Temporary,
    Permanent,
    Cancelled,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "temporary" => Some(Status::Temporary),
            "permanent" => Some(Status::Permanent),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
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
    #[error("the newest {from}/{to} rate is from {as_of}, older than the allowed maximum age")]
    StaleRate {
        from: CurrencyCode,
        to: CurrencyCode,
        as_of: DateTime<Utc>,
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
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid {
        field,
        message: message.into(),
    }
}

/// What a partner asks for.
pub struct ConversionRequest<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub amount: &'a str,
}

/// A priced conversion that is not stored (the `convert` quote endpoint and the first half of
/// `create`).
pub struct Priced {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub amount: Amount,
    pub quote: crate::rates::RateQuote,
    pub result: BigDecimal,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
}

/// Validates the request and prices it at the rate in force (or at `at`).
pub async fn price(
    state: &AppState,
    rates: &crate::rates::Rates,
    req: &ConversionRequest<'_>,
    at: Option<DateTime<Utc>>,
) -> Result<Priced, ConversionError> {
    let from = currencies::parse_code("from", req.from)?;
    let to = currencies::parse_code("to", req.to)?;
    if from == to {
        return Err(invalid("to", "must differ from `from`"));
    }
    let from_currency = currencies::require_usable(&state.db, from).await?;
    let to_currency = currencies::require_usable(&state.db, to).await?;
    let max: BigDecimal = state
        .settings
        .conversions
        .max_amount
        .parse()
        .map_err(|_| anyhow::anyhow!("conversions.max_amount is not a decimal"))?;
    let amount = Amount::parse(req.amount, from.as_str(), from_currency.minor_units, &max)
        .map_err(|e| invalid("amount", e.to_string()))?;
    let quote = crate::rates::service::quote(rates, from, to, at).await?;
    let result = money::convert(amount.value(), &quote.rate, to_currency.minor_units);
    Ok(Priced {
        from,
        to,
        amount,
        quote,
        result,
        from_minor_units: from_currency.minor_units,
        to_minor_units: to_currency.minor_units,
    })
}

fn request_hash(priced: &Priced) -> Vec<u8> {
    Sha256::digest(format!("{}|{}|{}", priced.from, priced.to, priced.amount).as_bytes()).to_vec()
}

/// Converts and stores in one transaction. With an `Idempotency-Key`, the same key and body
/// return the original conversion (`created = false`); the same key with another body fails.
#[tracing::instrument(skip(state, rates, req), fields(partner_id = %partner))]
pub async fn create(
    state: &AppState,
    rates: &crate::rates::Rates,
    partner: Uuid,
    req: ConversionRequest<'_>,
    idempotency_key: Option<&str>,
) -> Result<(ConversionView, bool), ConversionError> {
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 255 || key.chars().any(|c| c.is_control()))
    {
        return Err(invalid(
            "Idempotency-Key",
            "must be 1 to 255 printable characters",
        ));
    }
    let priced = price(state, rates, &req, None).await?;
    if priced.quote.stale && state.settings.conversions.stale_rates == StaleRatePolicy::Refuse {
        return Err(ConversionError::StaleRate {
            from: priced.from,
            to: priced.to,
            as_of: priced.quote.as_of,
        });
    }
    let now = state.clock.now();
    let holding =
        i64::try_from(state.settings.conversions.holding_period_secs).unwrap_or(i64::MAX / 4);
    let row = ConversionRow {
        id: Uuid::now_v7(),
        partner_id: partner,
        from_currency: priced.from,
        to_currency: priced.to,
        amount: priced.amount.value().clone(),
        from_minor_units: priced.from_minor_units,
        to_minor_units: priced.to_minor_units,
        rate: priced.quote.rate.value().clone(),
        result: priced.result.clone(),
        rate_as_of: priced.quote.as_of,
        rate_provider: priced.quote.provider.clone(),
        from_quote_id: priced.quote.from_quote_id,
        to_quote_id: priced.quote.to_quote_id,
        stale_rate: priced.quote.stale,
        status: Status::Temporary,
        created_at: now,
        finalizes_at: now + Duration::seconds(holding),
        finalized_at: None,
        cancelled_at: None,
    };
    let mut tx = state.db.begin().await?;
    if let Some(key) = idempotency_key {
        let ttl = i64::try_from(state.settings.conversions.idempotency_ttl_secs).unwrap_or(86_400);
        let hash = request_hash(&priced);
        if let Some((stored_hash, existing)) = store::claim_idempotency_key(
            &mut tx,
            partner,
            key,
            &hash,
            row.id,
            now,
            now + Duration::seconds(ttl),
        )
        .await?
        {
            tx.rollback().await?;
            if stored_hash != hash {
                return Err(ConversionError::IdempotencyMismatch);
            }
            let original = store::find(&state.db, existing)
                .await?
                .ok_or(ConversionError::NotFound)?;
            return Ok((original.into(), false));
        }
    }
    store::insert(&mut tx, &row).await?;
    tx.commit().await?;
    tracing::info!(conversion_id = %row.id, from = %row.from_currency, to = %row.to_currency, "conversion created");
    Ok((row.into(), true))
}

/// A conversion visible to the caller: partners see only their own (another partner's is
/// "not found", never "forbidden", so existence does not leak).
pub async fn get(
    state: &AppState,
    id: Uuid,
    partner: Option<Uuid>,
) -> Result<ConversionView, ConversionError> {
    let row = store::find(&state.db, id)
        .await?
        .ok_or(ConversionError::NotFound)?;
    if partner.is_some_and(|p| p != row.partner_id) {
        return Err(ConversionError::NotFound);
    }
    Ok(row.into())
}

pub async fn cancel(
    state: &AppState,
    id: Uuid,
    partner: Uuid,
) -> Result<ConversionView, ConversionError> {
    let now = state.clock.now();
    if let Some(row) = store::cancel(&state.db, id, partner, now).await? {
        tracing::info!(conversion_id = %id, "conversion cancelled");
        return Ok(row.into());
    }
    // Why not: missing/foreign (404), already final, or past its holding period.
    let current = get(state, id, Some(partner)).await?;
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
pub async fn finalize_due(state: &AppState) -> anyhow::Result<u64> {
    let now = state.clock.now();
    let mut total = 0;
    loop {
        let n = store::finalize_due(&state.db, now, FINALIZE_BATCH).await?;
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
            e @ C::StaleRate { .. } => ApiError::Unprocessable {
                slug: "stale-rate",
                detail: e.to_string(),
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

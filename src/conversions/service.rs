//! Conversion use cases: convert (idempotent), read, cancel, finalize.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::idempotency::IdempotencyKey;
use super::store::{self, ConversionRow};
use crate::auth::PartnerId;
use crate::currencies::{CurrencyCode, CurrencyError};
use crate::error::ApiError;
use crate::money::{self, Amount, Rate};
use crate::quotes::service::{self as quotes, LockedRate, QuoteUseError};
use crate::rates::pricing::{self, Purpose};
use crate::settings::StaleRatePolicy;
use crate::state::AppState;
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
    #[error("the newest {from}/{to} rate is from {as_of}, older than the allowed maximum age")]
    StaleRate {
        from: CurrencyCode,
        to: CurrencyCode,
        as_of: DateTime<Utc>,
    },
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

/// What a partner asks for.
pub struct ConversionRequest<'a> {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub amount: &'a str,
    /// Convert at this quote's locked rate instead of the rate in force.
    pub quote_id: Option<Uuid>,
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

/// A currency pair priced at the rate in force (or at `at`), before any amount: what a rate
/// lock needs, and the first half of [`price`].
pub struct PricedPair {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub quote: crate::rates::RateQuote,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
}

/// Two distinct currencies usable for new business, with their minor units.
struct UsablePair {
    from: CurrencyCode,
    to: CurrencyCode,
    from_minor_units: i16,
    to_minor_units: i16,
}

async fn usable_pair(
    state: &AppState,
    from: CurrencyCode,
    to: CurrencyCode,
) -> Result<UsablePair, ConversionError> {
    // The same checks as every other pricing (rates::pricing), against PostgreSQL since the
    // result is recorded.
    let rates = crate::rates::Rates::new(state);
    let (source, target) = pricing::usable_pair(&rates, from, to, None, Purpose::Record).await?;
    Ok(UsablePair {
        from,
        to,
        from_minor_units: source.minor_units,
        to_minor_units: target.minor_units,
    })
}

/// Validates both currencies (usable for new business, distinct) and finds their rate.
pub async fn price_pair(
    state: &AppState,
    rates: &crate::rates::Rates,
    from: CurrencyCode,
    to: CurrencyCode,
    at: Option<DateTime<Utc>>,
) -> Result<PricedPair, ConversionError> {
    let pair = usable_pair(state, from, to).await?;
    let quote = crate::rates::service::quote(rates, pair.from, pair.to, at).await?;
    Ok(PricedPair {
        from: pair.from,
        to: pair.to,
        quote,
        from_minor_units: pair.from_minor_units,
        to_minor_units: pair.to_minor_units,
    })
}

/// Parses a partner's amount of a currency with `minor_units` decimals, within
/// `conversions.max_amount`.
pub fn parse_amount(
    state: &AppState,
    raw: &str,
    currency: CurrencyCode,
    minor_units: i16,
) -> Result<Amount, ConversionError> {
    let max = &state.settings.conversions.max_amount;
    Amount::parse(raw, currency.as_str(), minor_units, max)
        .map_err(|e| invalid("amount", e.to_string()))
}

/// Validates the request and prices it at the rate in force (or at `at`).
pub async fn price(
    state: &AppState,
    rates: &crate::rates::Rates,
    req: &ConversionRequest<'_>,
    at: Option<DateTime<Utc>>,
) -> Result<Priced, ConversionError> {
    let pair = usable_pair(state, req.from, req.to).await?;
    let amount = parse_amount(state, req.amount, pair.from, pair.from_minor_units)?;
    let quote = crate::rates::service::quote(rates, pair.from, pair.to, at).await?;
    let result = money::convert(amount.value(), &quote.rate, pair.to_minor_units);
    Ok(Priced {
        from: pair.from,
        to: pair.to,
        amount,
        quote,
        result,
        from_minor_units: pair.from_minor_units,
        to_minor_units: pair.to_minor_units,
    })
}

/// Refuses a stale rate where `conversions.stale_rates` says so.
pub fn refuse_stale(
    state: &AppState,
    quote: &crate::rates::RateQuote,
) -> Result<(), ConversionError> {
    if quote.stale && state.settings.conversions.stale_rates == StaleRatePolicy::Refuse {
        return Err(ConversionError::StaleRate {
            from: quote.from,
            to: quote.to,
            as_of: quote.as_of,
        });
    }
    Ok(())
}

/// What an `Idempotency-Key` remembers of a request. The quote id is appended only when there
/// is one, so keys stored before quotes existed still match their replays.
fn request_hash(
    from: CurrencyCode,
    to: CurrencyCode,
    amount: &Amount,
    quote_id: Option<Uuid>,
) -> Vec<u8> {
    let mut text = format!("{from}|{to}|{amount}");
    if let Some(q) = quote_id {
        text.push_str(&format!("|{q}"));
    }
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Where a conversion's rate comes from: the rate in force, or a quote's locked rate.
pub(super) struct RateSource {
    rate: Rate,
    as_of: DateTime<Utc>,
    provider: String,
    from_quote_id: Option<i64>,
    to_quote_id: Option<i64>,
    stale: bool,
    quote_id: Option<Uuid>,
}

impl From<crate::rates::RateQuote> for RateSource {
    fn from(q: crate::rates::RateQuote) -> Self {
        Self {
            rate: q.rate,
            as_of: q.as_of,
            provider: q.provider,
            from_quote_id: q.from_quote_id,
            to_quote_id: q.to_quote_id,
            stale: q.stale,
            quote_id: None,
        }
    }
}

impl From<LockedRate> for RateSource {
    fn from(q: LockedRate) -> Self {
        Self {
            rate: q.rate,
            as_of: q.reference_as_of,
            provider: q.provider,
            from_quote_id: q.from_quote_id,
            to_quote_id: q.to_quote_id,
            stale: q.stale_rate,
            quote_id: Some(q.quote_id),
        }
    }
}

/// A quote the partner cannot use. A missing and another partner's quote read the same.
pub(super) fn quote_use_error(id: Uuid, e: QuoteUseError) -> ConversionError {
    match e {
        QuoteUseError::NotFound => invalid("quote_id", "no such quote"),
        QuoteUseError::Expired { expires_at } => ConversionError::QuoteExpired { id, expires_at },
        QuoteUseError::Used => ConversionError::QuoteUsed(id),
        QuoteUseError::Mismatch { field, message } => invalid(field, message),
    }
}

/// A conversion row priced from `source`, created now.
#[allow(clippy::too_many_arguments)]
pub(super) fn new_row(
    state: &AppState,
    id: Uuid,
    partner: PartnerId,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: &Amount,
    minor_units: (i16, i16),
    source: RateSource,
    now: DateTime<Utc>,
) -> ConversionRow {
    let holding = crate::settings::secs(state.settings.conversions.holding_period_secs);
    ConversionRow {
        id,
        partner_id: partner.as_uuid(),
        from_currency: from,
        to_currency: to,
        amount: amount.value().clone(),
        from_minor_units: minor_units.0,
        to_minor_units: minor_units.1,
        result: money::convert(amount.value(), &source.rate, minor_units.1),
        rate: source.rate.into_inner(),
        rate_as_of: source.as_of,
        rate_provider: source.provider,
        from_quote_id: source.from_quote_id,
        to_quote_id: source.to_quote_id,
        stale_rate: source.stale,
        status: Status::Temporary,
        created_at: now,
        finalizes_at: now + Duration::seconds(holding),
        finalized_at: None,
        cancelled_at: None,
        quote_id: source.quote_id,
    }
}

/// Converts and stores. With an `Idempotency-Key`, the same key and body return the original
/// conversion (`created = false`); the same key with another body fails.
///
/// At the rate in force this is one statement ([`store::create`]): the currencies are checked
/// against the in-memory rates cache first and again by the statement itself in PostgreSQL, so
/// a currency an admin just disabled on another instance is still refused at once. With a
/// `quote_id`, the quote's locked rate is used; the quote is read under a row lock in a
/// transaction, so a single-use quote converts once however many requests race.
#[tracing::instrument(skip(state, rates, req), fields(partner_id = %partner, quote_id = ?req.quote_id))]
pub async fn create(
    state: &AppState,
    rates: &crate::rates::Rates,
    partner: PartnerId,
    req: ConversionRequest<'_>,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(ConversionView, bool), ConversionError> {
    let idempotency_key = idempotency_key.map(IdempotencyKey::as_str);
    if req.quote_id.is_some() {
        let pair = usable_pair(state, req.from, req.to).await?;
        return create_on_quote(state, partner, &req, pair, idempotency_key).await;
    }
    let mut pair = cached_usable_pair(state, rates, req.from, req.to).await?;
    // A second round only when PostgreSQL disagreed with the cache and then agreed with
    // itself (an admin changed a currency between the two reads).
    for _ in 0..2 {
        let amount = parse_amount(state, req.amount, pair.from, pair.from_minor_units)?;
        let quote = crate::rates::service::quote(rates, pair.from, pair.to, None).await?;
        refuse_stale(state, &quote)?;
        // PostgreSQL keeps microseconds: the response and the webhook show what a later read
        // shows.
        let now = state.clock.now().trunc_subsecs(6);
        let row = new_row(
            state,
            Uuid::now_v7(),
            partner,
            pair.from,
            pair.to,
            &amount,
            (pair.from_minor_units, pair.to_minor_units),
            quote.into(),
            now,
        );
        let hash = idempotency_key.map(|_| request_hash(pair.from, pair.to, &amount, None));
        let key = idempotency_key
            .zip(hash.as_deref())
            .map(|(key, request_hash)| store::NewKey {
                key,
                request_hash,
                expires_at: now + Duration::seconds(idempotency_ttl_secs(state)),
            });
        let view = ConversionView::from(row.clone());
        let payload = crate::webhooks::outbox::body(EventType::ConversionCreated, now, &view)
            .map_err(anyhow::Error::from)?;
        let event = store::CreatedEvent {
            id: Uuid::now_v7(),
            event_type: EventType::ConversionCreated.as_str(),
            payload: &payload,
        };
        let existing = match store::create(&state.db, &row, key, event).await? {
            store::Created::Stored => {
                tracing::info!(conversion_id = %row.id, from = %row.from_currency, to = %row.to_currency, "conversion created");
                return Ok((view, true));
            }
            store::Created::CurrencyChanged => {
                // PostgreSQL's word on the currencies, with the precise refusal.
                pair = usable_pair(state, req.from, req.to).await?;
                continue;
            }
            store::Created::KeyTaken(hash, id) => Some((hash, id)),
            store::Created::KeyTakenUnseen => match idempotency_key {
                Some(key) => store::find_idempotency_key(&state.db, partner, key).await?,
                None => None,
            },
        };
        let (stored_hash, original) = existing.ok_or_else(|| {
            anyhow::anyhow!("an Idempotency-Key was taken and then vanished before it was read")
        })?;
        if hash.as_deref() != Some(stored_hash.as_slice()) {
            return Err(ConversionError::IdempotencyMismatch);
        }
        let original = store::find(&state.db, original)
            .await?
            .ok_or(ConversionError::NotFound)?;
        return Ok((original.into(), false));
    }
    Err(anyhow::anyhow!("the currencies kept changing while a conversion was stored").into())
}

/// The pair checked against the in-memory rates cache (no round trip); when the cache refuses
/// it, PostgreSQL decides, since the cache may be behind an admin's change on another
/// instance. [`store::create`] checks the cache's answer again in PostgreSQL.
async fn cached_usable_pair(
    state: &AppState,
    rates: &crate::rates::Rates,
    from: CurrencyCode,
    to: CurrencyCode,
) -> Result<UsablePair, ConversionError> {
    match pricing::usable_pair(rates, from, to, None, Purpose::Quote).await {
        Ok((source, target)) => Ok(UsablePair {
            from,
            to,
            from_minor_units: source.minor_units,
            to_minor_units: target.minor_units,
        }),
        Err(_) => usable_pair(state, from, to).await,
    }
}

/// Converts at a quote's locked rate: the key claim, the quote under its row lock and the
/// insert in one transaction.
async fn create_on_quote(
    state: &AppState,
    partner: PartnerId,
    req: &ConversionRequest<'_>,
    pair: UsablePair,
    idempotency_key: Option<&str>,
) -> Result<(ConversionView, bool), ConversionError> {
    let amount = parse_amount(state, req.amount, pair.from, pair.from_minor_units)?;
    let Some(quote_id) = req.quote_id else {
        return Err(anyhow::anyhow!("no rate source for a conversion").into());
    };
    // PostgreSQL keeps microseconds: the response and the webhook show what a later read shows.
    let now = state.clock.now().trunc_subsecs(6);
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    if let Some(key) = idempotency_key {
        let hash = request_hash(pair.from, pair.to, &amount, req.quote_id);
        if let Some(original) = claim_key(state, &mut tx, partner, key, &hash, id, now).await? {
            tx.rollback().await?;
            let original = store::find(&state.db, original)
                .await?
                .ok_or(ConversionError::NotFound)?;
            return Ok((original.into(), false));
        }
    }
    let mut claimed = quotes::claim(&mut tx, partner, &[quote_id], now).await?;
    let locked = claimed
        .take(quote_id, pair.from, pair.to, amount.value())
        .map_err(|e| quote_use_error(quote_id, e))?;
    claimed.record_use(&mut tx).await?;
    let source: RateSource = locked.into();
    let row = new_row(
        state,
        id,
        partner,
        pair.from,
        pair.to,
        &amount,
        (pair.from_minor_units, pair.to_minor_units),
        source,
        now,
    );
    store::insert(&mut tx, &row).await?;
    tracing::info!(conversion_id = %row.id, from = %row.from_currency, to = %row.to_currency, "conversion created");
    let view = ConversionView::from(row);
    // The event commits with the conversion or not at all (webhooks' outbox).
    crate::webhooks::outbox::record(
        &mut tx,
        EventType::ConversionCreated,
        now,
        [(partner, &view)],
    )
    .await?;
    tx.commit().await?;
    Ok((view, true))
}

fn idempotency_ttl_secs(state: &AppState) -> i64 {
    crate::settings::secs(state.settings.conversions.idempotency_ttl_secs)
}

/// Claims `key` for the conversion (or batch) `id`. `Some(original)` when the key was used
/// before with the same request; a different request under the same key is refused.
async fn claim_key(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    partner: PartnerId,
    key: &str,
    hash: &[u8],
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, ConversionError> {
    let ttl = idempotency_ttl_secs(state);
    match store::claim_idempotency_key(
        tx,
        partner,
        key,
        hash,
        id,
        now,
        now + Duration::seconds(ttl),
    )
    .await?
    {
        None => Ok(None),
        Some((stored_hash, _)) if stored_hash != hash => Err(ConversionError::IdempotencyMismatch),
        Some((_, existing)) => Ok(Some(existing)),
    }
}

/// A conversion visible to the caller: partners see only their own (another partner's is
/// "not found", never "forbidden", so existence does not leak).
pub async fn get(
    state: &AppState,
    id: Uuid,
    partner: Option<PartnerId>,
) -> Result<ConversionView, ConversionError> {
    let row = store::find(&state.db, id)
        .await?
        .ok_or(ConversionError::NotFound)?;
    if partner.is_some_and(|p| p.as_uuid() != row.partner_id) {
        return Err(ConversionError::NotFound);
    }
    Ok(row.into())
}

pub async fn cancel(
    state: &AppState,
    id: Uuid,
    partner: PartnerId,
) -> Result<ConversionView, ConversionError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
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
        // Each batch commits with its `conversion.finalized` events; delivery happens later,
        // outside this transaction.
        let mut tx = state.db.begin().await?;
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
            e @ C::StaleRate { .. } => ApiError::Unprocessable {
                slug: "stale-rate",
                detail: e.to_string(),
            },
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

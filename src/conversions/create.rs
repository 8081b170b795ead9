//! Converting one amount (`POST /conversions`): at the rate in force in one statement (shared
//! with concurrent conversions, [`super::group_commit`]), or at a
//! quote's locked rate in a transaction; idempotent with an `Idempotency-Key`. The row built
//! here ([`new_row`]) is also what a batch stores for each item.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use super::Conversions;
use super::domain::{ConversionError, ConversionView, Status, invalid};
use super::group_commit::{Pending, PendingKey};
use super::store::{self, ConversionRow};
use crate::auth::PartnerId;
use crate::currencies::CurrencyCode;
use crate::idempotency::{self, Claim, IdempotencyKey, RequestHash, Scope};
use crate::money::{Amount, Rate, RequestedAmount};
use crate::quotes::service::{self as quotes, LockedRate, QuoteUseError};
use crate::rates::pricing::{Checked, PriceRequest, Priced, Pricer, Purpose};
use crate::webhooks::EventType;

/// What a partner asks for.
pub struct ConversionRequest<'a> {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub amount: &'a RequestedAmount,
    /// Convert at this quote's locked rate instead of the rate in force.
    pub quote_id: Option<Uuid>,
}

/// What an `Idempotency-Key` remembers of one conversion, as parsed: a single conversion is
/// these fields, a batch these fields of each item in order.
pub(super) fn hash_conversion(
    hash: RequestHash,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: &BigDecimal,
    quote_id: Option<Uuid>,
) -> RequestHash {
    hash.text(from.as_str())
        .text(to.as_str())
        .decimal(amount)
        .optional(quote_id, RequestHash::uuid)
}

/// Where a conversion's reference rate comes from: the rates in force, or a quote's lock (the
/// rate itself and its breakdown are in [`PricedAmount`]).
pub(super) struct RateSource {
    as_of: DateTime<Utc>,
    provider: String,
    /// The sources whose values made the reference rate (a quote's: those it was locked on).
    sources: Vec<String>,
    from_quote_id: Option<i64>,
    to_quote_id: Option<i64>,
    stale: bool,
    quote_id: Option<Uuid>,
}

impl From<crate::rates::RateQuote> for RateSource {
    fn from(q: crate::rates::RateQuote) -> Self {
        Self {
            sources: q.rate_sources(),
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
            as_of: q.reference_as_of,
            provider: q.provider,
            sources: q.sources,
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
        QuoteUseError::NoAmount => invalid(
            "quote_id",
            "the quote fixed no amount, so it is indicative only: lock a rate for the amount to convert",
        ),
    }
}

/// What a conversion row records of its price: the currencies with their minor units, the
/// amount and the result the pricing pipeline gave.
pub(super) struct PricedAmount {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub minor_units: (i16, i16),
    pub amount: Amount,
    pub result: bigdecimal::BigDecimal,
    /// The rate the partner got.
    pub rate: Rate,
    /// The breakdown of the price: the reference rate, the markup and lock spread in basis
    /// points, and what they came to.
    pub reference_rate: Rate,
    pub markup_bps: u32,
    pub lock_bps: u32,
    pub markup_amount: bigdecimal::BigDecimal,
}

impl PricedAmount {
    /// At the rate in force.
    pub(super) fn of(priced: &Priced) -> Result<Self, ConversionError> {
        let (amount, result) = priced.amount_and_result()?;
        Ok(Self {
            from: priced.from,
            to: priced.to,
            minor_units: (priced.from_minor_units, priced.to_minor_units),
            amount: amount.clone(),
            result: result.clone(),
            rate: priced.rate.clone(),
            reference_rate: priced.reference.rate.clone(),
            markup_bps: priced.markup_bps,
            lock_bps: priced.lock_bps,
            markup_amount: priced.markup_amount.clone().unwrap_or_default(),
        })
    }

    /// On a locked rate, with the breakdown the lock was made with.
    pub(super) fn on_lock(checked: &Checked, locked: &LockedRate) -> Result<Self, ConversionError> {
        let result = checked.at_locked_rate(&locked.rate)?;
        let (Some(amount), Some(result)) = (checked.amount.clone(), result) else {
            return Err(anyhow::anyhow!("a conversion without an amount").into());
        };
        let markup_amount = crate::money::markup_amount(
            amount.value(),
            &locked.reference_rate,
            &result,
            checked.to.minor_units,
        );
        Ok(Self {
            from: checked.from.code,
            to: checked.to.code,
            minor_units: (checked.from.minor_units, checked.to.minor_units),
            amount,
            result,
            rate: locked.rate.clone(),
            reference_rate: locked.reference_rate.clone(),
            markup_bps: locked.markup_bps,
            lock_bps: locked.lock_bps,
            markup_amount,
        })
    }
}

/// A conversion row of `priced`, from `source`, created now.
pub(super) fn new_row(
    conversions: &Conversions,
    id: Uuid,
    partner: PartnerId,
    priced: PricedAmount,
    source: RateSource,
    now: DateTime<Utc>,
) -> ConversionRow {
    let holding = crate::settings::secs(conversions.settings.holding_period_secs);
    ConversionRow {
        id,
        partner_id: partner.as_uuid(),
        from_currency: priced.from,
        to_currency: priced.to,
        amount: priced.amount.value().clone(),
        from_minor_units: priced.minor_units.0,
        to_minor_units: priced.minor_units.1,
        result: priced.result,
        reference_rate: priced.reference_rate.into_inner(),
        markup_bps: i32::try_from(priced.markup_bps).unwrap_or(i32::MAX),
        lock_bps: i32::try_from(priced.lock_bps).unwrap_or(i32::MAX),
        markup_amount: priced.markup_amount,
        rate: priced.rate.into_inner(),
        rate_as_of: source.as_of,
        rate_provider: source.provider,
        rate_sources: source.sources,
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
/// At the rate in force the conversion is written by one statement ([`store::create`]), shared
/// with the conversions that arrive at the same time ([`super::group_commit`]); the answer comes
/// once that statement has committed. The currencies are checked against the in-memory rates
/// cache first and again by the statement itself in PostgreSQL, per row, so a currency an admin
/// just disabled on another instance is still refused at once. With a
/// `quote_id`, the quote's locked rate is used; the quote is read under a row lock in a
/// transaction, so a single-use quote converts once however many requests race.
#[tracing::instrument(skip(conversions, req), fields(partner_id = %partner, quote_id = ?req.quote_id))]
pub async fn create(
    conversions: &Conversions,
    partner: PartnerId,
    req: ConversionRequest<'_>,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(ConversionView, bool), ConversionError> {
    let price_request = PriceRequest {
        from: req.from,
        to: req.to,
        amount: Some(req.amount),
        at: None,
    };
    if let Some(quote_id) = req.quote_id {
        let checked = Pricer::new(&conversions.rates, Purpose::LockedConversion)
            .for_partner(Some(partner))
            .check(price_request)
            .await?;
        return create_on_quote(conversions, partner, quote_id, checked, idempotency_key).await;
    }
    let mut pricer =
        Pricer::new(&conversions.rates, Purpose::Conversion).for_partner(Some(partner));
    // A second round only when PostgreSQL disagreed with the cache and then agreed with
    // itself (an admin changed a currency between the two reads).
    for _ in 0..2 {
        let priced = pricer.price(price_request).await?;
        let source = RateSource::from(priced.reference.clone());
        let priced = PricedAmount::of(&priced)?;
        let (from, to, amount) = (priced.from, priced.to, priced.amount.clone());
        // PostgreSQL keeps microseconds: the response and the webhook show what a later read
        // shows.
        let now = conversions.clock.now().trunc_subsecs(6);
        let row = new_row(conversions, Uuid::now_v7(), partner, priced, source, now);
        let hash = idempotency_key
            .map(|_| hash_conversion(RequestHash::new(), from, to, amount.value(), None).finish());
        let key = idempotency_key
            .zip(hash.as_ref())
            .map(|(key, request_hash)| PendingKey {
                key: key.as_str().to_owned(),
                request_hash: request_hash.clone(),
                expires_at: conversions.keys.expires_at(now),
            });
        let view = ConversionView::from(row.clone());
        let payload = crate::webhooks::outbox::body(EventType::ConversionCreated, now, &view)
            .map_err(anyhow::Error::from)?;
        let pending = Pending {
            row,
            key,
            event_id: Uuid::now_v7(),
            payload,
        };
        let held = match conversions.commits.write(pending).await? {
            store::Created::Stored => {
                tracing::info!(conversion_id = %view.id, from = %view.from, to = %view.to, "conversion created");
                return Ok((view, true));
            }
            store::Created::CurrencyChanged => {
                // PostgreSQL's word on the currencies, with the precise refusal.
                pricer = pricer.currencies_from_database();
                continue;
            }
            store::Created::KeyTaken(held) => Some(held),
            store::Created::KeyTakenUnseen => match idempotency_key {
                Some(key) => {
                    let partner = partner.as_uuid();
                    idempotency::find(&conversions.db, partner, Scope::Conversion, key).await?
                }
                None => None,
            },
        };
        let (Some(held), Some(hash)) = (held, hash) else {
            return Err(anyhow::anyhow!(
                "an Idempotency-Key was taken and then vanished before it was read"
            )
            .into());
        };
        let Some(original) = held.answer(&hash).replay()? else {
            return Err(anyhow::anyhow!("a held Idempotency-Key claimed as new").into());
        };
        let original = store::find(&conversions.db, original)
            .await?
            .ok_or(ConversionError::NotFound)?;
        return Ok((original.into(), false));
    }
    Err(anyhow::anyhow!("the currencies kept changing while a conversion was stored").into())
}

/// Converts at a quote's locked rate: the key claim, the quote under its row lock and the
/// insert in one transaction.
async fn create_on_quote(
    conversions: &Conversions,
    partner: PartnerId,
    quote_id: Uuid,
    checked: Checked,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(ConversionView, bool), ConversionError> {
    let Some(amount) = checked.amount.clone() else {
        return Err(anyhow::anyhow!("a conversion without an amount").into());
    };
    // PostgreSQL keeps microseconds: the response and the webhook show what a later read shows.
    let now = conversions.clock.now().trunc_subsecs(6);
    let id = Uuid::now_v7();
    let mut tx = conversions.db.begin().await?;
    if let Some(key) = idempotency_key {
        let hash = hash_conversion(
            RequestHash::new(),
            checked.from.code,
            checked.to.code,
            amount.value(),
            Some(quote_id),
        )
        .finish();
        let claim = Claim {
            scope: Scope::Conversion,
            partner_id: partner.as_uuid(),
            key,
            request_hash: &hash,
            resource_id: id,
        };
        let claimed = conversions.keys.claim(&mut tx, claim, now).await?;
        if let Some(original) = claimed.replay()? {
            tx.rollback().await?;
            let original = store::find(&conversions.db, original)
                .await?
                .ok_or(ConversionError::NotFound)?;
            return Ok((original.into(), false));
        }
    }
    let mut claimed = quotes::claim(&mut tx, partner, &[quote_id], now).await?;
    let locked = claimed
        .take(quote_id, checked.from.code, checked.to.code, amount.value())
        .map_err(|e| quote_use_error(quote_id, e))?;
    claimed.record_use(&mut tx).await?;
    let priced = PricedAmount::on_lock(&checked, &locked)?;
    let row = new_row(conversions, id, partner, priced, locked.into(), now);
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

//! What a conversion or a quote starts with: two usable, distinct currencies, their rate and the
//! partner's amount, checked and priced on the one pricing path ([`crate::rates::pricing`]).

use chrono::{DateTime, Utc};

use super::Conversions;
use super::service::{ConversionError, invalid};
use crate::currencies::CurrencyCode;
use crate::money::{Amount, RequestedAmount};
use crate::rates::pricing::{self, Purpose};
use crate::settings::StaleRatePolicy;

/// A currency pair priced at the rate in force (or at `at`), before any amount: what a rate
/// lock needs.
pub struct PricedPair {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub quote: crate::rates::RateQuote,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
}

/// Two distinct currencies usable for new business, with their minor units.
pub(super) struct UsablePair {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
}

/// The pair checked against PostgreSQL, since the result is recorded.
pub(super) async fn usable_pair(
    conversions: &Conversions,
    from: CurrencyCode,
    to: CurrencyCode,
) -> Result<UsablePair, ConversionError> {
    // The same checks as every other pricing (rates::pricing), against PostgreSQL since the
    // result is recorded.
    let (source, target) =
        pricing::usable_pair(&conversions.rates, from, to, None, Purpose::Record).await?;
    Ok(UsablePair {
        from,
        to,
        from_minor_units: source.minor_units,
        to_minor_units: target.minor_units,
    })
}

/// The pair checked against the in-memory rates cache (no round trip); when the cache refuses
/// it, PostgreSQL decides, since the cache may be behind an admin's change on another
/// instance. [`super::store::create`] checks the cache's answer again in PostgreSQL.
pub(super) async fn cached_usable_pair(
    conversions: &Conversions,
    from: CurrencyCode,
    to: CurrencyCode,
) -> Result<UsablePair, ConversionError> {
    match pricing::usable_pair(&conversions.rates, from, to, None, Purpose::Quote).await {
        Ok((source, target)) => Ok(UsablePair {
            from,
            to,
            from_minor_units: source.minor_units,
            to_minor_units: target.minor_units,
        }),
        Err(_) => usable_pair(conversions, from, to).await,
    }
}

/// Validates both currencies (usable for new business, distinct) and finds their rate.
pub async fn price_pair(
    conversions: &Conversions,
    from: CurrencyCode,
    to: CurrencyCode,
    at: Option<DateTime<Utc>>,
) -> Result<PricedPair, ConversionError> {
    let pair = usable_pair(conversions, from, to).await?;
    let quote = crate::rates::service::quote(&conversions.rates, pair.from, pair.to, at).await?;
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
    conversions: &Conversions,
    requested: &RequestedAmount,
    currency: CurrencyCode,
    minor_units: i16,
) -> Result<Amount, ConversionError> {
    let max = &conversions.settings.max_amount;
    Amount::of(requested, currency.as_str(), minor_units, max)
        .map_err(|e| invalid("amount", e.to_string()))
}

/// Refuses a stale rate where `conversions.stale_rates` says so.
pub fn refuse_stale(
    conversions: &Conversions,
    quote: &crate::rates::RateQuote,
) -> Result<(), ConversionError> {
    if quote.stale && conversions.settings.stale_rates == StaleRatePolicy::Refuse {
        return Err(ConversionError::StaleRate {
            from: quote.from,
            to: quote.to,
            as_of: quote.as_of,
        });
    }
    Ok(())
}

//! What a conversion starts with: two usable, distinct currencies, their rate and the
//! partner's amount, checked and priced on the one pricing path ([`crate::rates::pricing`]),
//! which rate locks ([`crate::quotes`]) build on too.

use super::Conversions;
use super::service::{ConversionError, invalid};
use crate::currencies::CurrencyCode;
use crate::money::{Amount, RequestedAmount};
use crate::rates::pricing::{self, Purpose};

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

/// Refuses a stale rate where `conversions.stale_rates` says so (the same check as a rate
/// lock's, [`pricing::refuse_stale`]).
pub fn refuse_stale(
    conversions: &Conversions,
    quote: &crate::rates::RateQuote,
) -> Result<(), ConversionError> {
    Ok(pricing::refuse_stale(
        conversions.settings.stale_rates,
        quote,
    )?)
}

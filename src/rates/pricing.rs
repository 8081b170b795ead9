//! The one way an amount is priced, for `GET /convert` (a quote, nothing recorded), for
//! `POST /conversions` (recorded by `conversions`) and for rate locks (`POST /quotes`, recorded
//! by `quotes` from the steps [`usable_pair`], [`service::quote`], [`parse_amount`] and
//! [`refuse_stale`]): the same validation in the same order and the same errors for the same
//! fault. Money arithmetic is [`crate::money`]'s.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Rates;
use super::service::{self, RateQuote, RatesError, Use, check_currency};
use crate::currencies::{Currency, CurrencyCode, CurrencyError};
use crate::money::{self, Amount, Rate, RequestedAmount};
use crate::settings::StaleRatePolicy;

/// What is asked: `amount` of `from` in `to`, now (`at = None`) or at a past instant.
#[derive(Debug, Clone, Copy)]
pub struct PriceRequest<'a> {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// The amount as sent (checked against the source currency by [`price`]).
    pub amount: &'a RequestedAmount,
    /// A past instant, or `None` for the rate in force.
    pub at: Option<DateTime<Utc>>,
}

/// Why the amount is priced, which decides where currencies are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A quote: currencies are checked against the latest-rates cache (at most
    /// [`super::cache::VERSION_CHECK_INTERVAL`] behind another instance's change).
    Quote,
    /// A conversion about to be recorded: currencies are read from PostgreSQL, so a currency an
    /// admin just disabled on another instance is refused at once.
    Record,
}

/// A priced amount: what was asked, at which rate, and the rounded result.
#[derive(Debug, Clone)]
pub struct Priced {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// The amount, at the source currency's minor units.
    pub amount: Amount,
    /// The rate used and where it comes from.
    pub quote: RateQuote,
    /// `amount × rate`, rounded half-even to the target's minor units.
    pub result: BigDecimal,
    /// Minor units of `from`.
    pub from_minor_units: i16,
    /// Minor units of `to`.
    pub to_minor_units: i16,
}

fn usable(
    currency: Option<Currency>,
    code: CurrencyCode,
    field: &'static str,
) -> Result<Currency, RatesError> {
    match currency {
        None => Err(RatesError::CurrencyNotSupported { code, field }),
        Some(c) if c.retired => Err(RatesError::CurrencyRetired { code, field }),
        Some(c) if !c.enabled => Err(RatesError::CurrencyDisabled { code, field }),
        Some(c) => Ok(c),
    }
}

async fn from_database(
    rates: &Rates,
    code: CurrencyCode,
    field: &'static str,
) -> Result<Currency, RatesError> {
    let found = crate::currencies::service::find(&rates.db, code)
        .await
        .map_err(|e| match e {
            // Kept whole, so that an unavailable database still reads as one (503).
            CurrencyError::Unexpected(e) => RatesError::Unexpected(e),
            other => RatesError::Unexpected(anyhow::Error::new(other)),
        })?;
    usable(found, code, field)
}

/// The two currencies of a request, checked: distinct, and usable (any known one for a past
/// instant when `purpose` is a quote). The first step of [`price`]; rate locks use it alone.
pub async fn usable_pair(
    rates: &Rates,
    from: CurrencyCode,
    to: CurrencyCode,
    at: Option<DateTime<Utc>>,
    purpose: Purpose,
) -> Result<(Currency, Currency), RatesError> {
    if from == to {
        return Err(RatesError::Invalid {
            field: "to",
            message: "must differ from `from`".into(),
        });
    }
    Ok(match purpose {
        Purpose::Record => (
            from_database(rates, from, "from").await?,
            from_database(rates, to, "to").await?,
        ),
        Purpose::Quote => {
            let entry = rates.runtime.cache.get(rates).await?;
            let usage = if at.is_some() {
                Use::History
            } else {
                Use::Latest
            };
            (
                check_currency(&entry, from, usage, "from")?.clone(),
                check_currency(&entry, to, usage, "to")?.clone(),
            )
        }
    })
}

/// An amount of `currency` as sent: positive, within `conversions.max_amount`, with at most the
/// currency's minor units. The second step of [`price`].
pub fn parse_amount(
    max: &BigDecimal,
    requested: &RequestedAmount,
    currency: &Currency,
) -> Result<Amount, RatesError> {
    Ok(Amount::of(
        requested,
        currency.code.as_str(),
        currency.minor_units,
        max,
    )?)
}

/// Refuses a stale rate where `policy` (`conversions.stale_rates`) says so: the last step of
/// pricing what is recorded or held (a conversion, a rate lock); `GET /convert` only flags it.
pub fn refuse_stale(policy: StaleRatePolicy, quote: &RateQuote) -> Result<(), RatesError> {
    if quote.stale && policy == StaleRatePolicy::Refuse {
        return Err(RatesError::StaleRate {
            from: quote.from,
            to: quote.to,
            as_of: quote.as_of,
        });
    }
    Ok(())
}

/// Validates and prices `req`: the currencies differ and may be used (any known one for a past
/// instant), the amount is positive, within `conversions.max_amount` and has at most the source
/// currency's minor units; then the rate in force (or at `at`) is applied.
pub async fn price(
    rates: &Rates,
    req: PriceRequest<'_>,
    purpose: Purpose,
) -> Result<Priced, RatesError> {
    let PriceRequest { from, to, at, .. } = req;
    let (source, target) = usable_pair(rates, from, to, at, purpose).await?;
    let amount = parse_amount(&rates.max_amount, req.amount, &source)?;
    let quote = service::quote(rates, from, to, at).await?;
    let result = money::convert(amount.value(), &quote.rate, target.minor_units);
    Ok(Priced {
        from,
        to,
        amount,
        quote,
        result,
        from_minor_units: source.minor_units,
        to_minor_units: target.minor_units,
    })
}

/// A conversion priced but not recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionQuote {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// Amount in `from`, at its minor units.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub amount: BigDecimal,
    /// Units of `to` per one `from`.
    #[schema(value_type = String)]
    pub rate: Rate,
    /// `amount × rate`, rounded half-even to `to`'s minor units.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub result: BigDecimal,
    /// Provider timestamp of the rate.
    pub rate_as_of: DateTime<Utc>,
    /// Provider name.
    /// The same field names as a conversion's (`rate_*`): a quote is a conversion not yet
    /// recorded.
    pub rate_provider: String,
    /// Whether the rate is older than `rates.max_age_secs`.
    pub stale_rate: bool,
}

impl From<Priced> for ConversionQuote {
    fn from(p: Priced) -> Self {
        Self {
            from: p.from,
            to: p.to,
            amount: p.amount.value().clone(),
            rate: p.quote.rate,
            result: p.result,
            rate_as_of: p.quote.as_of,
            rate_provider: p.quote.provider,
            stale_rate: p.quote.stale,
        }
    }
}

//! The one pricing pipeline. Every price the service makes goes through [`Pricer`]: the
//! indicative `GET /convert`, `POST /conversions` (at the rate in force or on a rate lock), each
//! item of `POST /conversions/batch` and `POST /quotes`. The steps run in one fixed order, so one
//! faulty request gets one answer wherever it is sent:
//!
//! 1. **pair**: two distinct currencies, both supported, enabled and not retired (any known one
//!    for an instant in the past);
//! 2. **amount**: positive, with at most the source currency's minor units, within
//!    `conversions.max_amount` and the currency's `conversions.min_amounts` (required for what
//!    is recorded and for a redeemable lock);
//! 3. **rate**: a rate is stored for the pair;
//! 4. **freshness**: a stale rate is refused where `conversions.stale_rates` says so, for what
//!    is recorded or held; an indicative price only flags it;
//! 5. **price**: `rate = reference × (1 − (markup_bps + lock_bps) / 10000)`, where `markup_bps`
//!    is the partner's ([`crate::markups`]: its pair override, its default, or
//!    `pricing.default_markup_bps`) and `lock_bps` the rate lock's spread (0 for a conversion at
//!    the rate in force); then the result, rounded toward zero by [`crate::money::convert`],
//!    which refuses a result of zero, and the markup it came to.
//!
//! Where a purpose reads currencies (the in-memory cache, PostgreSQL, one read per batch) is the
//! only thing that differs, and it changes no answer: only how quickly an admin's change on
//! another instance is seen. Money arithmetic is [`crate::money`]'s.

use std::collections::HashMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Rates;
use super::service::{self, RateQuote, RatesError, Use, check_currency};
use crate::auth::PartnerId;
use crate::currencies::{Currency, CurrencyCode, CurrencyError};
use crate::markups::MarkupSchedule;
use crate::money::{self, Amount, Bounds, Rate, RequestedAmount};
use crate::settings::{ConversionSettings, PricingSettings, StaleRatePolicy};

/// The rules every price follows, from `conversions.*`: the bounds of an amount and what a
/// stale rate means for what is recorded.
#[derive(Debug, Clone)]
pub struct PricingRules {
    /// `conversions.max_amount` and `conversions.min_amounts`.
    pub bounds: Bounds,
    /// `conversions.stale_rates`.
    pub stale_rates: StaleRatePolicy,
    /// `pricing.default_markup_bps`: the markup of a partner without its own.
    pub default_markup_bps: u32,
}

impl PricingRules {
    /// The rules of `conversions.*` and `pricing.*`.
    pub fn from_settings(settings: &ConversionSettings, pricing: &PricingSettings) -> Self {
        Self {
            bounds: settings.amount_bounds(),
            stale_rates: settings.stale_rates,
            default_markup_bps: pricing.default_markup_bps,
        }
    }
}

/// What is asked: `amount` of `from` in `to`, now (`at = None`) or at a past instant.
#[derive(Debug, Clone, Copy)]
pub struct PriceRequest<'a> {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// The amount as sent (checked against the source currency in step 2). `None` only for an
    /// indicative rate lock.
    pub amount: Option<&'a RequestedAmount>,
    /// A past instant (indicative prices only), or `None` for the rate in force.
    pub at: Option<DateTime<Utc>>,
}

/// Why an amount is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `GET /convert`: nothing is recorded. Currencies come from the latest-rates cache (at most
    /// [`super::cache::VERSION_CHECK_INTERVAL`] behind another instance's change); a stale rate
    /// is flagged, not refused.
    Indicative,
    /// `POST /conversions` at the rate in force: currencies from the cache, and from PostgreSQL
    /// when the cache refuses (the insert checks them again in PostgreSQL).
    Conversion,
    /// `POST /conversions` on a rate lock: steps 1–2 here, the rate is the lock's
    /// ([`Checked::at_locked_rate`]). Currencies from PostgreSQL.
    LockedConversion,
    /// One item of a batch: currencies from one read of PostgreSQL for the whole batch.
    BatchItem,
    /// `POST /quotes`: the reference rate less `lock_bps`. A `redeemable` lock (any lock but
    /// `none`) holds a rate for a fixed amount, so the amount is required. Currencies from
    /// PostgreSQL.
    RateLock {
        /// The lock's spread, in basis points below the reference rate.
        lock_bps: u32,
        /// Whether a conversion may later use it.
        redeemable: bool,
    },
}

impl Purpose {
    /// Whether what is priced is recorded or held, so that a stale rate is refused where
    /// `conversions.stale_rates` says so.
    fn commits(self) -> bool {
        !matches!(self, Purpose::Indicative)
    }

    fn lock_bps(self) -> u32 {
        match self {
            Purpose::RateLock { lock_bps, .. } => lock_bps,
            _ => 0,
        }
    }
}

/// Steps 1–2 passed: the pair and the amount.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Source currency.
    pub from: Currency,
    /// Target currency.
    pub to: Currency,
    /// The amount, at the source currency's minor units (`None` for an indicative lock).
    pub amount: Option<Amount>,
}

impl Checked {
    /// Step 5 on a rate the partner locked earlier (its spread already taken): the result of
    /// the amount, refused when it rounds to zero.
    pub fn at_locked_rate(&self, rate: &Rate) -> Result<Option<BigDecimal>, RatesError> {
        self.amount
            .as_ref()
            .map(|a| money::convert(a.value(), rate, self.to.code, self.to.minor_units))
            .transpose()
            .map_err(RatesError::Amount)
    }
}

/// A price: what was asked, the reference rate and where it comes from, what was taken off
/// it, the rate the partner gets and the result.
#[derive(Debug, Clone)]
pub struct Priced {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// Minor units of `from`.
    pub from_minor_units: i16,
    /// Minor units of `to`.
    pub to_minor_units: i16,
    /// The reference rate and its provenance.
    pub reference: RateQuote,
    /// The partner's markup on this pair, in basis points below the reference rate.
    pub markup_bps: u32,
    /// The rate lock's spread (0 for a conversion at the rate in force).
    pub lock_bps: u32,
    /// `markup_bps + lock_bps`: everything taken off the reference rate.
    pub spread_bps: u32,
    /// The rate the partner gets: `reference × (1 − spread_bps / 10000)`.
    pub rate: Rate,
    /// The amount, at the source currency's minor units (`None` for an indicative lock).
    pub amount: Option<Amount>,
    /// `amount × rate` rounded toward zero to the target's minor units, never zero.
    pub result: Option<BigDecimal>,
    /// What the spread came to in the target currency ([`money::markup_amount`]).
    pub markup_amount: Option<BigDecimal>,
}

impl Priced {
    /// The breakdown a client sees and a record stores. A [`Rate`] is normalized when made,
    /// so its value is shown as it is.
    pub fn details(&self) -> RateBreakdown {
        RateBreakdown {
            reference_rate: self.reference.rate.value().clone(),
            markup_bps: self.markup_bps,
            lock_bps: self.lock_bps,
            rate: self.rate.value().clone(),
            markup_amount: self.markup_amount.clone(),
            provider: self.reference.provider.clone(),
            sources: self.reference.rate_sources(),
            reference_as_of: self.reference.as_of,
        }
    }
}

/// How a price was made, stored with it and shown on every price: `rate = reference_rate × (1 −
/// (markup_bps + lock_bps) / 10000)`, and what that kept of the reference price.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RateBreakdown {
    /// The reference rate (units of `to` per one `from`) before anything is taken off.
    #[schema(value_type = String, example = "1.1")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub reference_rate: BigDecimal,
    /// The partner's markup, in basis points below the reference rate.
    pub markup_bps: u32,
    /// The rate lock's spread, in basis points (0 without a lock).
    pub lock_bps: u32,
    /// The rate the partner got.
    #[schema(value_type = String, example = "1.09725")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub rate: BigDecimal,
    /// `amount × reference_rate` rounded toward zero to the target's minor units, less the
    /// result: what the markup and the lock's spread came to (`null` without an amount).
    #[schema(value_type = Option<String>, example = "0.28")]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub markup_amount: Option<BigDecimal>,
    /// Where the reference rate comes from.
    pub provider: String,
    /// The sources whose values made the reference rate: with `rates.sources`, those whose
    /// consensus it was (both sides of a cross rate); otherwise `[provider]`.
    #[schema(example = json!(["ecb", "frankfurter", "oxr"]))]
    pub sources: Vec<String>,
    /// The provider's timestamp of the reference rate.
    pub reference_as_of: DateTime<Utc>,
}

impl Priced {
    /// The amount and its result, which every purpose but an indicative lock has (step 2
    /// requires the amount).
    pub fn amount_and_result(&self) -> Result<(&Amount, &BigDecimal), RatesError> {
        self.amount
            .as_ref()
            .zip(self.result.as_ref())
            .ok_or_else(|| RatesError::Unexpected(anyhow::anyhow!("a price without an amount")))
    }
}

/// Prices requests for one purpose. One per request; a batch keeps one for all its items, so
/// that currencies are read once and each pair's rate is looked up once.
pub struct Pricer<'r> {
    rates: &'r Rates,
    purpose: Purpose,
    /// Whose price it is: its markup applies (`None`: an admin's reference price).
    partner: Option<PartnerId>,
    /// The partner's markups, read once per pricer.
    markups: Option<std::sync::Arc<MarkupSchedule>>,
    /// PostgreSQL decides the currencies (after it disagreed with the cache).
    from_database: bool,
    /// A batch's one read of the currencies.
    currencies: Option<HashMap<CurrencyCode, Currency>>,
    /// Rates already looked up for this request.
    rates_seen: HashMap<(CurrencyCode, CurrencyCode), RateQuote>,
    /// The latest-rates entry, read once per pricer: one request's currencies and rate come
    /// from the same entry (and a batch's items from one), and the cache is asked once, not
    /// once per currency and again for the rate.
    latest: Option<std::sync::Arc<super::cache::LatestEntry>>,
}

impl<'r> Pricer<'r> {
    /// A pricer for `purpose` on the rates (and pricing rules) of `rates`.
    pub fn new(rates: &'r Rates, purpose: Purpose) -> Self {
        Self {
            rates,
            purpose,
            partner: None,
            markups: None,
            from_database: false,
            currencies: None,
            rates_seen: HashMap::new(),
            latest: None,
        }
    }

    /// The latest-rates entry, read from the cache on first use and kept for this pricer.
    async fn latest(&mut self) -> Result<std::sync::Arc<super::cache::LatestEntry>, RatesError> {
        if let Some(entry) = &self.latest {
            return Ok(entry.clone());
        }
        let entry = self.rates.runtime.cache.get(self.rates).await?;
        self.latest = Some(entry.clone());
        Ok(entry)
    }

    /// Prices for `partner`, with its markup (admins price at the reference rate).
    pub fn for_partner(mut self, partner: Option<PartnerId>) -> Self {
        self.partner = partner;
        self
    }

    /// From now on currencies are read from PostgreSQL, whatever the purpose: for a second
    /// attempt after PostgreSQL refused what the cache accepted.
    pub fn currencies_from_database(mut self) -> Self {
        self.from_database = true;
        self
    }

    /// Steps 1 and 2: the pair and the amount.
    pub async fn check(&mut self, req: PriceRequest<'_>) -> Result<Checked, RatesError> {
        let (from, to) = self.pair(req).await?;
        let amount = self.amount(req, &from)?;
        Ok(Checked { from, to, amount })
    }

    /// Every step: the pair, the amount, the rate, its freshness, the price.
    pub async fn price(&mut self, req: PriceRequest<'_>) -> Result<Priced, RatesError> {
        let checked = self.check(req).await?;
        let reference = self.rate(req).await;
        let reference = self.fresh(req, reference)?;
        let markup_bps = self.markup_bps(req.from, req.to).await?;
        let lock_bps = self.purpose.lock_bps();
        let spread_bps = markup_bps + lock_bps;
        let rate = reference
            .rate
            .with_spread(spread_bps)
            .map_err(|e| anyhow::anyhow!("a spread of {spread_bps} bps: {e}"))?;
        let result = checked.at_locked_rate(&rate)?;
        let markup_amount = checked.amount.as_ref().zip(result.as_ref()).map(|(a, r)| {
            money::markup_amount(a.value(), &reference.rate, r, checked.to.minor_units)
        });
        Ok(Priced {
            from: checked.from.code,
            to: checked.to.code,
            from_minor_units: checked.from.minor_units,
            to_minor_units: checked.to.minor_units,
            reference,
            markup_bps,
            lock_bps,
            spread_bps,
            rate,
            amount: checked.amount,
            result,
            markup_amount,
        })
    }

    /// The partner's markup on `from` → `to` (0 for an admin).
    async fn markup_bps(
        &mut self,
        from: CurrencyCode,
        to: CurrencyCode,
    ) -> Result<u32, RatesError> {
        let Some(partner) = self.partner else {
            return Ok(0);
        };
        if self.markups.is_none() {
            let schedule = self
                .rates
                .schedules
                .of(partner)
                .await
                .map_err(|e| RatesError::Unexpected(e.into()))?;
            self.markups = Some(schedule);
        }
        Ok(self.markups.as_ref().map_or(0, |m| m.for_pair(from, to)))
    }

    /// Step 1.
    async fn pair(&mut self, req: PriceRequest<'_>) -> Result<(Currency, Currency), RatesError> {
        if req.from == req.to {
            return Err(RatesError::Invalid {
                field: "to",
                message: "must differ from `from`".into(),
            });
        }
        let from = self.currency(req.from, "from", req.at).await?;
        let to = self.currency(req.to, "to", req.at).await?;
        Ok((from, to))
    }

    async fn currency(
        &mut self,
        code: CurrencyCode,
        field: &'static str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Currency, RatesError> {
        if self.from_database {
            return from_database(self.rates, code, field).await;
        }
        match self.purpose {
            Purpose::Indicative => {
                let entry = self.latest().await?;
                let usage = if at.is_some() {
                    Use::History
                } else {
                    Use::Latest
                };
                Ok(check_currency(&entry, code, usage, field)?.clone())
            }
            Purpose::Conversion => {
                if let Ok(entry) = self.latest().await {
                    if let Ok(c) = check_currency(&entry, code, Use::Latest, field) {
                        return Ok(c.clone());
                    }
                }
                // The cache may be behind an admin's change on another instance, or unable to
                // load: PostgreSQL decides, and says precisely why (or that it is unavailable).
                from_database(self.rates, code, field).await
            }
            Purpose::LockedConversion | Purpose::RateLock { .. } => {
                from_database(self.rates, code, field).await
            }
            Purpose::BatchItem => {
                if self.currencies.is_none() {
                    let all = crate::currencies::service::list(&self.rates.db, true)
                        .await
                        .map_err(currency_error)?;
                    self.currencies = Some(all.into_iter().map(|c| (c.code, c)).collect());
                }
                let found = self.currencies.as_ref().and_then(|m| m.get(&code)).cloned();
                usable(found, code, field)
            }
        }
    }

    /// Step 2.
    fn amount(&self, req: PriceRequest<'_>, from: &Currency) -> Result<Option<Amount>, RatesError> {
        match req.amount {
            Some(requested) => Ok(Some(Amount::of(
                requested,
                from.code,
                from.minor_units,
                &self.rates.rules.bounds,
            )?)),
            None => match self.purpose {
                Purpose::RateLock {
                    redeemable: false, ..
                } => Ok(None),
                Purpose::RateLock { .. } => Err(RatesError::Invalid {
                    field: "amount",
                    message: "a rate lock holds a rate for a fixed amount, once: send `amount` \
                              (or `lock: none` for an indicative quote without one)"
                        .into(),
                }),
                _ => Err(RatesError::Invalid {
                    field: "amount",
                    message: "is required".into(),
                }),
            },
        }
    }

    /// Step 3.
    async fn rate(&mut self, req: PriceRequest<'_>) -> Result<RateQuote, RatesError> {
        if req.at.is_none() {
            if let Some(seen) = self.rates_seen.get(&(req.from, req.to)) {
                return Ok(seen.clone());
            }
        }
        let latest = self.latest().await?;
        let quote = service::quote_in(self.rates, &latest, req.from, req.to, req.at).await?;
        if req.at.is_none() {
            self.rates_seen.insert((req.from, req.to), quote.clone());
        }
        Ok(quote)
    }
}

/// `table`'s rates as `partner` gets them: each the reference rate less the partner's markup for
/// the table's base → that currency (no lock), so a partner can show its own customers prices
/// without a quote per pair.
pub async fn all_in(
    rates: &Rates,
    table: &mut super::service::RatesTable,
    partner: PartnerId,
) -> Result<(), RatesError> {
    let schedule = rates
        .schedules
        .of(partner)
        .await
        .map_err(|e| RatesError::Unexpected(e.into()))?;
    let base = table.base;
    for (code, rate) in table.rates.iter_mut() {
        let markup = schedule.for_pair(base, *code);
        *rate = rate
            .with_spread(markup)
            .map_err(|e| anyhow::anyhow!("a markup of {markup} bps: {e}"))?;
    }
    Ok(())
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

fn currency_error(e: CurrencyError) -> RatesError {
    match e {
        // Kept whole, so that an unavailable database still reads as one (503).
        CurrencyError::Unexpected(e) => RatesError::Unexpected(e),
        other => RatesError::Unexpected(anyhow::Error::new(other)),
    }
}

async fn from_database(
    rates: &Rates,
    code: CurrencyCode,
    field: &'static str,
) -> Result<Currency, RatesError> {
    let found = crate::currencies::service::find(&rates.db, code)
        .await
        .map_err(currency_error)?;
    usable(found, code, field)
}

impl Pricer<'_> {
    /// Step 4, freshness. With `rates.sources`, a currency the sources do not agree on now
    /// (degraded, or no consensus left) is refused for every purpose, with `Retry-After` until
    /// the next fetch: a price never comes from a minority. Then a stale rate is refused where
    /// `conversions.stale_rates` says so, for what is recorded or held.
    fn fresh(
        &self,
        req: PriceRequest<'_>,
        reference: Result<RateQuote, RatesError>,
    ) -> Result<RateQuote, RatesError> {
        let consensus = !self.rates.settings.sources.is_empty() && req.at.is_none();
        let unavailable = |code| RatesError::RateUnavailable {
            code,
            retry_after_secs: self.rates.secs_to_next_fetch(),
        };
        let reference = match reference {
            Err(RatesError::NotQuoted(code)) if consensus => return Err(unavailable(code)),
            other => other?,
        };
        if let Some(code) = reference.degraded.filter(|_| consensus) {
            return Err(unavailable(code));
        }
        if self.purpose.commits() {
            refuse_stale(self.rates.rules.stale_rates, &reference)?;
        }
        Ok(reference)
    }
}

/// Refuses a stale rate where `policy` (`conversions.stale_rates`) says so.
fn refuse_stale(policy: StaleRatePolicy, quote: &RateQuote) -> Result<(), RatesError> {
    if quote.stale && policy == StaleRatePolicy::Refuse {
        return Err(RatesError::StaleRate {
            from: quote.from,
            to: quote.to,
            as_of: quote.as_of,
        });
    }
    Ok(())
}

/// A conversion priced but not recorded: the schema of `GET /convert`'s answer. The route
/// writes that answer with [`super::quote_json`], whose tests hold it byte for byte to what
/// serde writes for this type.
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
    /// `amount × rate`, rounded toward zero to `to`'s minor units.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub result: BigDecimal,
    /// Provider timestamp of the rate.
    pub rate_as_of: DateTime<Utc>,
    /// Provider name.
    /// The same field names as a conversion's (`rate_*`): a quote is a conversion not yet
    /// recorded.
    pub rate_provider: String,
    /// The sources whose values made the reference rate (see `rate_details.sources`).
    #[schema(example = json!(["ecb", "frankfurter", "oxr"]))]
    pub rate_sources: Vec<String>,
    /// Whether the rate is older than `rates.max_age_secs`.
    pub stale_rate: bool,
    /// How the rate was made: the reference rate, the partner's markup, what it came to.
    pub rate_details: RateBreakdown,
}

impl TryFrom<Priced> for ConversionQuote {
    type Error = RatesError;

    fn try_from(p: Priced) -> Result<Self, RatesError> {
        let (amount, result) = p.amount_and_result()?;
        let (amount, result) = (amount.value().clone(), result.clone());
        let rate_details = p.details();
        Ok(Self {
            from: p.from,
            to: p.to,
            amount,
            rate: p.rate,
            result,
            rate_as_of: p.reference.as_of,
            rate_sources: rate_details.sources.clone(),
            rate_provider: p.reference.provider,
            stale_rate: p.reference.stale,
            rate_details,
        })
    }
}

//! Rate providers: which ones exist, what their payloads look like, and how a payload becomes a
//! validated [`Snapshot`]. Everything here is pure (bytes and an injected `now` in, a snapshot or
//! a [`ProviderError`] out); HTTP, retries and failover live in [`super::client`].
//!
//! Rates are read from the payload's literal text (JSON numbers through
//! [`serde_json::value::RawValue`], XML attributes as strings) and parsed with [`Rate::parse`],
//! so no rate ever passes through a float.

use std::collections::BTreeMap;

use std::str::FromStr;
use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::value::RawValue;

use crate::currencies::code::CurrencyCode;
use crate::money::Rate;

mod ecb;
mod exchangerate_api;
mod frankfurter;
mod open_exchange_rates;
#[cfg(test)]
mod tests;

pub use ecb::parse_ecb_daily_xml;
use exchangerate_api::EraError;
pub use exchangerate_api::parse_exchangerate_api;
use frankfurter::FrankfurterError;
pub use frankfurter::parse_frankfurter;
use open_exchange_rates::OxrError;
pub use open_exchange_rates::parse_open_exchange_rates;

/// Clock skew tolerated between us and a provider before a timestamp counts as "in the future".
pub const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Hour (UTC) given to date-only publications. The ECB publishes its reference rates around
/// 16:00 CET, which is 15:00 UTC; Frankfurter republishes the ECB's rates, so the same applies.
const DATE_ONLY_PUBLICATION_HOUR_UTC: u32 = 15;

// The provider names are settings vocabulary (`crate::settings`); what each provider does is
// here, as inherent methods on the same type.
pub use crate::settings::{ProviderKind, UnknownProvider};

impl ProviderKind {
    /// The public base URL, used when settings give none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Frankfurter => "https://api.frankfurter.dev/v1",
            ProviderKind::Ecb => "https://www.ecb.europa.eu/stats/eurofxref",
            ProviderKind::OpenExchangeRates => "https://openexchangerates.org/api",
            ProviderKind::ExchangeRateApi => "https://v6.exchangerate-api.com",
        }
    }

    /// The base this provider always quotes against, if it cannot be chosen.
    pub fn fixed_base(self) -> Option<CurrencyCode> {
        match self {
            ProviderKind::Ecb => Some(code("EUR")),
            // Choosing the base is a paid feature; we support the free plan.
            ProviderKind::OpenExchangeRates => Some(code("USD")),
            ProviderKind::Frankfurter | ProviderKind::ExchangeRateApi => None,
        }
    }

    /// Whether the provider dates its publications by day only (one publication per day), so
    /// that a snapshot's `as_of` before the publication hour is the time we first saw it.
    pub fn publishes_dates_only(self) -> bool {
        matches!(self, ProviderKind::Frankfurter | ProviderKind::Ecb)
    }

    /// The base a snapshot from this provider will have when `requested` is asked for.
    pub fn base_for(self, requested: CurrencyCode) -> CurrencyCode {
        self.fixed_base().unwrap_or(requested)
    }

    /// The URL of the latest rates for `base` (already resolved with [`Self::base_for`]).
    /// It may contain the API key: never log it, use [`redact`] on anything derived from it.
    pub fn latest_url(
        self,
        base_url: &str,
        api_key: Option<&str>,
        base: CurrencyCode,
        symbols: &[CurrencyCode],
    ) -> String {
        let root = base_url.trim_end_matches('/');
        let list = symbols
            .iter()
            .map(CurrencyCode::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let key = api_key.unwrap_or_default();
        match self {
            ProviderKind::Frankfurter if list.is_empty() => format!("{root}/latest?base={base}"),
            ProviderKind::Frankfurter => format!("{root}/latest?base={base}&symbols={list}"),
            ProviderKind::Ecb => format!("{root}/eurofxref-daily.xml"),
            ProviderKind::OpenExchangeRates if list.is_empty() => {
                format!("{root}/latest.json?app_id={key}")
            }
            ProviderKind::OpenExchangeRates => {
                format!("{root}/latest.json?app_id={key}&symbols={list}")
            }
            ProviderKind::ExchangeRateApi => format!("{root}/v6/{key}/latest/{base}"),
        }
    }

    /// Parses and validates a successful response body of this provider.
    pub fn parse(self, body: &[u8], query: &Query<'_>) -> Result<Snapshot, ProviderError> {
        match self {
            ProviderKind::Frankfurter => parse_frankfurter(body, query),
            ProviderKind::Ecb => parse_ecb_daily_xml(body, query),
            ProviderKind::OpenExchangeRates => parse_open_exchange_rates(body, query),
            ProviderKind::ExchangeRateApi => parse_exchangerate_api(body, query),
        }
    }

    /// The provider's own explanation in an error body (any status), if the body is one of its
    /// documented error payloads.
    pub fn error_message(self, body: &[u8]) -> Option<String> {
        match self {
            ProviderKind::Frankfurter => serde_json::from_slice::<FrankfurterError>(body)
                .ok()
                .map(|e| e.message),
            ProviderKind::OpenExchangeRates => serde_json::from_slice::<OxrError>(body)
                .ok()
                .filter(|e| e.error)
                .map(OxrError::describe),
            ProviderKind::ExchangeRateApi => serde_json::from_slice::<EraError>(body)
                .ok()
                .filter(|e| e.result == "error")
                .map(|e| e.error_type),
            ProviderKind::Ecb => None,
        }
    }
}

/// Replaces every occurrence of `secret` in `text`, so that URLs and messages that embed an
/// API key can be logged.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "[REDACTED]"),
        _ => text.to_owned(),
    }
}

fn code(literal: &str) -> CurrencyCode {
    CurrencyCode::parse(literal).expect("a three-letter literal is a currency code")
}

/// What a caller asked for, checked against the payload.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The base the snapshot must have (see [`ProviderKind::base_for`]).
    pub base: CurrencyCode,
    /// Currencies wanted; empty means all the provider publishes. Others are dropped.
    pub symbols: &'a [CurrencyCode],
    /// The current time, for the "not in the future" check.
    pub now: DateTime<Utc>,
}

/// Validated rates from one provider at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Who published the rates.
    pub provider: ProviderKind,
    /// The currency every quote is against.
    pub base: CurrencyCode,
    /// When the provider says the rates were valid; never after the fetch time.
    pub as_of: DateTime<Utc>,
    /// Units of the currency per one unit of `base`. Never contains `base` itself.
    pub quotes: BTreeMap<CurrencyCode, Rate>,
    /// Entries skipped because their key is not a three-letter code.
    pub ignored_codes: usize,
    /// Requested symbols the provider did not quote.
    pub missing: Vec<CurrencyCode>,
}

impl Snapshot {
    /// The same rates against another base, derived through the current one with
    /// [`Rate::cross`]. `None` if the new base is not quoted.
    pub fn rebased(&self, base: CurrencyCode) -> Option<Snapshot> {
        if base == self.base {
            return Some(self.clone());
        }
        let pivot_to_new = self.quotes.get(&base)?;
        let mut quotes: BTreeMap<CurrencyCode, Rate> = self
            .quotes
            .iter()
            .filter(|(c, _)| **c != base)
            .map(|(c, r)| (*c, Rate::cross(pivot_to_new, r)))
            .collect();
        quotes.insert(self.base, pivot_to_new.inverse());
        Some(Snapshot {
            base,
            quotes,
            ..self.clone()
        })
    }
}

/// Why a provider gave no usable snapshot. Messages never contain API keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The request did not complete within the configured timeouts.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connection refused or reset, DNS, TLS, or the body could not be read.
    #[error("transport error: {0}")]
    Transport(String),
    /// A non-success HTTP status.
    #[error("HTTP {status}{}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// The `Retry-After` header, when present and understood.
        retry_after: Option<Duration>,
        /// The provider's own error message from the body, if it sent one.
        message: Option<String>,
    },
    /// A well-formed error payload in a successful response.
    #[error("provider reported an error: {0}")]
    Reported(String),
    /// Not the documented format: HTML instead of JSON, truncated JSON, missing fields.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The documented format, but data we must not store.
    #[error("invalid data: {0}")]
    Invalid(#[from] InvalidData),
    /// The provider's circuit breaker is open; it was not called.
    #[error("circuit breaker open for another {}s", whole_seconds_up(.0))]
    CircuitOpen(Duration),
}

/// Data problems found while validating a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidData {
    /// The payload's base is not the one asked for.
    #[error("base is {actual}, expected {expected}")]
    WrongBase {
        /// What was asked for.
        expected: String,
        /// What the payload says.
        actual: String,
    },
    /// A rate that is zero, negative or not a decimal number.
    #[error("rate of {currency} is not a positive decimal: {value}")]
    BadRate {
        /// The currency whose rate is wrong.
        currency: String,
        /// The offending text (shortened).
        value: String,
    },
    /// The payload's timestamp is after now (plus [`MAX_CLOCK_SKEW`]).
    #[error("timestamp {0} is in the future")]
    FutureTimestamp(String),
    /// A timestamp that is not a date or a Unix time.
    #[error("timestamp `{0}` is not valid")]
    BadTimestamp(String),
    /// No usable rate at all.
    #[error("no rates in the payload")]
    NoRates,
    /// Frankfurter quoted for an amount other than 1 (rates would be scaled).
    #[error("rates are for an amount of {0}, expected 1")]
    AmountNotOne(String),
}

/// A remaining wait in whole seconds, rounded up: "another 0s" while 0.4 s remain would be false.
fn whole_seconds_up(d: &Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl ProviderError {
    /// Whether trying the same provider again soon can help: timeouts, connection errors, 5xx
    /// and 429 can; auth errors, other 4xx and bad payloads cannot (fail over instead).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Timeout(_) | ProviderError::Transport(_) => true,
            ProviderError::Status { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            ProviderError::Reported(_)
            | ProviderError::Malformed(_)
            | ProviderError::Invalid(_)
            | ProviderError::CircuitOpen(_) => false,
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Rejects bodies that are clearly not JSON before serde produces a confusing message.
fn json_malformed(body: &[u8], err: &serde_json::Error) -> ProviderError {
    let start = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(b' ');
    if body.iter().all(u8::is_ascii_whitespace) {
        ProviderError::Malformed("empty body".into())
    } else if start == b'<' {
        ProviderError::Malformed("HTML/XML instead of JSON".into())
    } else if err.is_eof() {
        ProviderError::Malformed(format!("truncated JSON ({err})"))
    } else {
        ProviderError::Malformed(format!("not the documented JSON ({err})"))
    }
}

/// Parses one rate from the literal text of a JSON value: a number, in plain or exponent
/// notation, read as a decimal.
fn rate_from_json(currency: &str, raw: &RawValue) -> Result<Rate, InvalidData> {
    let text = raw.get().trim();
    let bad = || InvalidData::BadRate {
        currency: currency.to_owned(),
        value: shorten(text),
    };
    let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if !is_number {
        return Err(bad());
    }
    // serde_json has already checked the JSON number grammar, so `BigDecimal::from_str` only
    // sees `-?digits(.digits)?([eE][+-]?digits)?` and parses it exactly.
    Rate::parse(text)
        .or_else(|_| {
            BigDecimal::from_str(text)
                .map_err(|_| bad())
                .and_then(|d| Rate::new(d).map_err(|_| bad()))
        })
        .map_err(|_| bad())
}

/// Shared validation: base, rates, timestamp, unknown codes, requested symbols.
fn build_snapshot<'v>(
    provider: ProviderKind,
    payload_base: &str,
    as_of: DateTime<Utc>,
    rates: impl IntoIterator<Item = (&'v str, Result<Rate, InvalidData>)>,
    query: &Query<'_>,
) -> Result<Snapshot, ProviderError> {
    let base = CurrencyCode::parse(payload_base.trim()).map_err(|_| InvalidData::WrongBase {
        expected: query.base.to_string(),
        actual: shorten(payload_base),
    })?;
    if base != query.base {
        return Err(InvalidData::WrongBase {
            expected: query.base.to_string(),
            actual: base.to_string(),
        }
        .into());
    }
    if as_of > query.now + MAX_CLOCK_SKEW {
        return Err(InvalidData::FutureTimestamp(as_of.to_rfc3339()).into());
    }
    let mut quotes = BTreeMap::new();
    let mut ignored_codes = 0;
    for (key, rate) in rates {
        let Ok(currency) = CurrencyCode::parse(key) else {
            ignored_codes += 1;
            continue;
        };
        let rate = rate?;
        if currency == base {
            // Providers that list the base give it as 1; anything else means the payload is
            // not what we think it is.
            if rate != Rate::parse("1").map_err(|_| InvalidData::NoRates)? {
                return Err(InvalidData::BadRate {
                    currency: currency.to_string(),
                    value: format!("{rate} (the base must be 1)"),
                }
                .into());
            }
            continue;
        }
        if query.symbols.is_empty() || query.symbols.contains(&currency) {
            quotes.insert(currency, rate);
        }
    }
    let missing: Vec<CurrencyCode> = query
        .symbols
        .iter()
        .filter(|c| **c != base && !quotes.contains_key(*c))
        .copied()
        .collect();
    if quotes.is_empty() {
        return Err(InvalidData::NoRates.into());
    }
    Ok(Snapshot {
        provider,
        base,
        as_of,
        quotes,
        ignored_codes,
        missing,
    })
}

/// A date-only publication as an instant: that date at 15:00 UTC (the ECB publishes around
/// 16:00 CET). Rejected if the date is after today; clamped to `now` if the hour has not come
/// yet, which happens in summer when 16:00 CEST is 14:00 UTC.
fn date_only_as_of(date_text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ProviderError> {
    let date = NaiveDate::parse_from_str(date_text.trim(), "%Y-%m-%d")
        .map_err(|_| InvalidData::BadTimestamp(shorten(date_text)))?;
    if date > (now + MAX_CLOCK_SKEW).date_naive() {
        return Err(InvalidData::FutureTimestamp(date.to_string()).into());
    }
    let published = date.and_time(
        NaiveTime::from_hms_opt(DATE_ONLY_PUBLICATION_HOUR_UTC, 0, 0).unwrap_or(NaiveTime::MIN),
    );
    Ok(Utc.from_utc_datetime(&published).min(now))
}

fn unix_as_of(seconds: i64) -> Result<DateTime<Utc>, ProviderError> {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .filter(|t| t.timestamp() > 0)
        .ok_or_else(|| InvalidData::BadTimestamp(seconds.to_string()).into())
}

fn rates_of<'m>(map: &'m BTreeMap<String, &RawValue>) -> Vec<(&'m str, Result<Rate, InvalidData>)> {
    map.iter()
        .map(|(k, v)| (k.as_str(), rate_from_json(k, v)))
        .collect()
}

fn missing(field: &str) -> ProviderError {
    ProviderError::Malformed(format!("not the documented JSON (no `{field}`)"))
}

//! Rate providers: which ones exist, what their payloads look like, and how a payload becomes a
//! validated [`Snapshot`]. Everything here is pure (bytes and an injected `now` in, a snapshot or
//! a [`ProviderError`] out); HTTP, retries and failover live in [`super::client`].
//!
//! Rates are read from the payload's literal text (JSON numbers through
//! [`serde_json::value::RawValue`], XML attributes as strings) and parsed with [`Rate::parse`],
//! so no rate ever passes through a float.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::currencies::code::CurrencyCode;
use crate::money::Rate;

/// Clock skew tolerated between us and a provider before a timestamp counts as "in the future".
pub const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Hour (UTC) given to date-only publications. The ECB publishes its reference rates around
/// 16:00 CET, which is 15:00 UTC; Frankfurter republishes the ECB's rates, so the same applies.
const DATE_ONLY_PUBLICATION_HOUR_UTC: u32 = 15;

/// A rates provider the service knows how to call and parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// <https://frankfurter.dev>: ECB rates, any base, no key.
    Frankfurter,
    /// The European Central Bank's daily reference rates XML: EUR base only, no key.
    Ecb,
    /// <https://openexchangerates.org>: needs an app id; the free plan quotes against USD only.
    OpenExchangeRates,
    /// <https://www.exchangerate-api.com> (v6): needs a key, any base.
    ExchangeRateApi,
}

/// A settings name that is not a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown rates provider `{0}` (expected frankfurter, ecb, openexchangerates or exchangerate_api)"
)]
pub struct UnknownProvider(pub String);

impl ProviderKind {
    /// Every provider, in the order they are documented.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Frankfurter,
        ProviderKind::Ecb,
        ProviderKind::OpenExchangeRates,
        ProviderKind::ExchangeRateApi,
    ];

    /// The name used in settings and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Frankfurter => "frankfurter",
            ProviderKind::Ecb => "ecb",
            ProviderKind::OpenExchangeRates => "openexchangerates",
            ProviderKind::ExchangeRateApi => "exchangerate_api",
        }
    }

    /// The public base URL, used when settings give none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Frankfurter => "https://api.frankfurter.dev/v1",
            ProviderKind::Ecb => "https://www.ecb.europa.eu/stats/eurofxref",
            ProviderKind::OpenExchangeRates => "https://openexchangerates.org/api",
            ProviderKind::ExchangeRateApi => "https://v6.exchangerate-api.com",
        }
    }

    /// Whether requests need an API key (app id).
    pub fn needs_api_key(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenExchangeRates | ProviderKind::ExchangeRateApi
        )
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

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| UnknownProvider(s.chars().take(40).collect()))
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

/// Every field optional, so that one pass tells the rates payload from the error payload and
/// serde's own errors keep their "EOF" information (an untagged enum would lose it, and cannot
/// hold borrowed raw values).
#[derive(Deserialize)]
struct FrankfurterBody<'a> {
    message: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    base: Option<String>,
    date: Option<String>,
    #[serde(borrow)]
    rates: Option<BTreeMap<String, &'a RawValue>>,
}

fn missing(field: &str) -> ProviderError {
    ProviderError::Malformed(format!("not the documented JSON (no `{field}`)"))
}

/// Parses Frankfurter's `/latest?base=…&symbols=…`:
/// `{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.0788}}`, or its error
/// `{"message":"not found"}`.
pub fn parse_frankfurter(body: &[u8], query: &Query<'_>) -> Result<Snapshot, ProviderError> {
    let parsed: FrankfurterBody<'_> =
        serde_json::from_slice(body).map_err(|e| json_malformed(body, &e))?;
    let Some(rates) = parsed.rates else {
        return Err(match parsed.message {
            Some(message) => ProviderError::Reported(message),
            None => missing("rates"),
        });
    };
    if let Some(amount) = parsed.amount {
        let text = amount.get().trim();
        if BigDecimal::from_str(text).ok() != Some(BigDecimal::from(1)) {
            return Err(InvalidData::AmountNotOne(shorten(text)).into());
        }
    }
    let base = parsed.base.ok_or_else(|| missing("base"))?;
    let date = parsed.date.ok_or_else(|| missing("date"))?;
    let as_of = date_only_as_of(&date, query.now)?;
    build_snapshot(
        ProviderKind::Frankfurter,
        &base,
        as_of,
        rates_of(&rates),
        query,
    )
}

#[derive(Deserialize)]
struct FrankfurterError {
    message: String,
}

#[derive(Deserialize)]
struct OxrError {
    error: bool,
    #[serde(default)]
    message: String,
    #[serde(default)]
    description: String,
}

impl OxrError {
    fn describe(self) -> String {
        match (self.message.is_empty(), self.description.is_empty()) {
            (false, false) => format!("{}: {}", self.message, self.description),
            (false, true) => self.message,
            _ => self.description,
        }
    }
}

#[derive(Deserialize)]
struct OxrBody<'a> {
    #[serde(default)]
    error: bool,
    #[serde(default)]
    message: String,
    #[serde(default)]
    description: String,
    timestamp: Option<i64>,
    base: Option<String>,
    #[serde(borrow)]
    rates: Option<BTreeMap<String, &'a RawValue>>,
}

/// Parses Open Exchange Rates' `latest.json`:
/// `{"disclaimer":…,"license":…,"timestamp":1449877801,"base":"USD","rates":{…}}`, or its error
/// `{"error":true,"status":401,"message":"invalid_app_id","description":"…"}`.
pub fn parse_open_exchange_rates(
    body: &[u8],
    query: &Query<'_>,
) -> Result<Snapshot, ProviderError> {
    let parsed: OxrBody<'_> = serde_json::from_slice(body).map_err(|e| json_malformed(body, &e))?;
    if parsed.error {
        let error = OxrError {
            error: true,
            message: parsed.message,
            description: parsed.description,
        };
        return Err(ProviderError::Reported(error.describe()));
    }
    let rates = parsed.rates.ok_or_else(|| missing("rates"))?;
    let base = parsed.base.ok_or_else(|| missing("base"))?;
    let timestamp = parsed.timestamp.ok_or_else(|| missing("timestamp"))?;
    build_snapshot(
        ProviderKind::OpenExchangeRates,
        &base,
        unix_as_of(timestamp)?,
        rates_of(&rates),
        query,
    )
}

#[derive(Deserialize)]
struct EraError {
    result: String,
    #[serde(rename = "error-type", default)]
    error_type: String,
}

#[derive(Deserialize)]
struct EraLatest<'a> {
    result: String,
    time_last_update_unix: i64,
    base_code: String,
    #[serde(borrow)]
    conversion_rates: BTreeMap<String, &'a RawValue>,
}

/// Parses ExchangeRate-API v6 `/v6/{key}/latest/{base}`:
/// `{"result":"success","time_last_update_unix":1585267200,"base_code":"USD",
/// "conversion_rates":{…}}`, or its error `{"result":"error","error-type":"invalid-key"}`.
pub fn parse_exchangerate_api(body: &[u8], query: &Query<'_>) -> Result<Snapshot, ProviderError> {
    if let Ok(err) = serde_json::from_slice::<EraError>(body)
        && err.result == "error"
    {
        let kind = if err.error_type.is_empty() {
            "unspecified error".to_owned()
        } else {
            err.error_type
        };
        return Err(ProviderError::Reported(kind));
    }
    let latest: EraLatest<'_> =
        serde_json::from_slice(body).map_err(|e| json_malformed(body, &e))?;
    if latest.result != "success" {
        return Err(ProviderError::Malformed(format!(
            "result is `{}`",
            shorten(&latest.result)
        )));
    }
    build_snapshot(
        ProviderKind::ExchangeRateApi,
        &latest.base_code,
        unix_as_of(latest.time_last_update_unix)?,
        rates_of(&latest.conversion_rates),
        query,
    )
}

/// Parses the ECB's `eurofxref-daily.xml`: a `gesmes:Envelope` holding
/// `<Cube><Cube time='YYYY-MM-DD'><Cube currency='USD' rate='1.0823'/>…</Cube></Cube>`. The base
/// is always EUR. If several dated cubes are present (the 90-day file), the first (newest) is
/// used.
pub fn parse_ecb_daily_xml(body: &[u8], query: &Query<'_>) -> Result<Snapshot, ProviderError> {
    use quick_xml::events::Event;

    let malformed = |what: String| ProviderError::Malformed(what);
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut saw_envelope = false;
    let mut time: Option<String> = None;
    // Set while inside the first dated cube; once it closes, later cubes are ignored.
    let mut in_first_day = false;
    let mut first_day_done = false;
    let mut rates: Vec<(String, Result<Rate, InvalidData>)> = Vec::new();

    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            malformed(format!(
                "XML error at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            _ => (None, false),
        };
        if let Some(tag) = start {
            if depth == 0 {
                if tag.local_name().as_ref() != b"Envelope" {
                    return Err(malformed(
                        "not the ECB envelope (HTML or another document?)".into(),
                    ));
                }
                saw_envelope = true;
            }
            if tag.local_name().as_ref() == b"Cube" && !first_day_done {
                let mut cube_time = None;
                let mut currency = None;
                let mut rate = None;
                for attr in tag.attributes() {
                    let attr = attr.map_err(|e| malformed(format!("bad attribute: {e}")))?;
                    let value = String::from_utf8_lossy(&attr.value).into_owned();
                    match attr.key.local_name().as_ref() {
                        b"time" => cube_time = Some(value),
                        b"currency" => currency = Some(value),
                        b"rate" => rate = Some(value),
                        _ => {}
                    }
                }
                if let Some(t) = cube_time {
                    if time.is_none() {
                        time = Some(t);
                        in_first_day = !empty;
                    }
                } else if let Some(currency) = currency {
                    if in_first_day {
                        let value = rate.unwrap_or_default();
                        let parsed = Rate::parse(&value).map_err(|_| InvalidData::BadRate {
                            currency: currency.clone(),
                            value: shorten(&value),
                        });
                        rates.push((currency, parsed));
                    }
                }
            }
            if !empty {
                depth += 1;
            }
        }
        match event {
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                // Closing the dated cube (Envelope > Cube > Cube[time]) brings depth back to 2.
                if in_first_day && depth == 2 {
                    in_first_day = false;
                    first_day_done = true;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_envelope {
        return Err(malformed("empty document".into()));
    }
    if depth != 0 {
        return Err(malformed("truncated XML".into()));
    }
    let time = time.ok_or_else(|| malformed("no dated Cube".into()))?;
    let as_of = date_only_as_of(&time, query.now)?;
    build_snapshot(
        ProviderKind::Ecb,
        "EUR",
        as_of,
        rates.iter().map(|(c, r)| (c.as_str(), r.clone())),
        query,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 9, 10, 0, 0).unwrap()
    }

    fn q<'a>(base: &str, symbols: &'a [CurrencyCode]) -> Query<'a> {
        Query {
            base: c(base),
            symbols,
            now: now(),
        }
    }

    fn rate(s: &Snapshot, code: &str) -> String {
        s.quotes[&c(code)].to_string()
    }

    #[test]
    fn provider_names_round_trip_and_unknown_is_refused() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>().unwrap(), kind);
        }
        assert_eq!(
            "ExchangeRate_API".parse::<ProviderKind>().unwrap(),
            ProviderKind::ExchangeRateApi
        );
        assert!("fixer".parse::<ProviderKind>().is_err());
        assert_eq!(ProviderKind::Ecb.base_for(c("USD")), c("EUR"));
        assert_eq!(ProviderKind::OpenExchangeRates.base_for(c("EUR")), c("USD"));
        assert_eq!(ProviderKind::Frankfurter.base_for(c("GBP")), c("GBP"));
    }

    #[test]
    fn urls_follow_each_providers_documentation() {
        let syms = [c("USD"), c("GBP")];
        assert_eq!(
            ProviderKind::Frankfurter.latest_url("https://f.test/v1/", None, c("EUR"), &syms),
            "https://f.test/v1/latest?base=EUR&symbols=USD,GBP"
        );
        assert_eq!(
            ProviderKind::Ecb.latest_url("https://e.test", None, c("EUR"), &syms),
            "https://e.test/eurofxref-daily.xml"
        );
        let oxr = ProviderKind::OpenExchangeRates.latest_url(
            "https://o.test/api",
            Some("k3y"),
            c("USD"),
            &[],
        );
        assert_eq!(oxr, "https://o.test/api/latest.json?app_id=k3y");
        assert_eq!(
            redact(&oxr, Some("k3y")),
            "https://o.test/api/latest.json?app_id=[REDACTED]"
        );
        assert_eq!(
            ProviderKind::ExchangeRateApi.latest_url("https://x.test", Some("k"), c("USD"), &[]),
            "https://x.test/v6/k/latest/USD"
        );
    }

    #[test]
    fn frankfurter_latest_is_parsed_without_floats() {
        let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.0788,"GBP":0.83123456789012345678}}"#;
        let s = parse_frankfurter(body, &q("EUR", &[])).unwrap();
        assert_eq!(s.provider, ProviderKind::Frankfurter);
        assert_eq!(s.base, c("EUR"));
        assert_eq!(
            s.as_of,
            Utc.with_ymd_and_hms(2024, 11, 8, 15, 0, 0).unwrap()
        );
        assert_eq!(rate(&s, "USD"), "1.0788");
        // More digits than an f64 holds survive intact.
        assert_eq!(rate(&s, "GBP"), "0.83123456789012345678");
    }

    #[test]
    fn frankfurter_error_payload_is_reported() {
        let err = parse_frankfurter(br#"{"message":"not found"}"#, &q("EUR", &[])).unwrap_err();
        assert_eq!(err, ProviderError::Reported("not found".into()));
        assert!(!err.is_retryable());
        assert_eq!(
            ProviderKind::Frankfurter.error_message(br#"{"message":"not found"}"#),
            Some("not found".into())
        );
    }

    #[test]
    fn frankfurter_scaled_amount_is_refused() {
        let body = br#"{"amount":10,"base":"EUR","date":"2024-11-08","rates":{"USD":10.788}}"#;
        assert!(matches!(
            parse_frankfurter(body, &q("EUR", &[])),
            Err(ProviderError::Invalid(InvalidData::AmountNotOne(_)))
        ));
    }

    #[test]
    fn html_truncated_and_empty_bodies_are_malformed() {
        let html = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
        let truncated = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07"#;
        for parse in [
            parse_frankfurter,
            parse_open_exchange_rates,
            parse_exchangerate_api,
        ] {
            let e = parse(html, &q("EUR", &[])).unwrap_err();
            assert!(
                matches!(&e, ProviderError::Malformed(m) if m.contains("HTML")),
                "{e}"
            );
            let e = parse(truncated, &q("EUR", &[])).unwrap_err();
            assert!(
                matches!(&e, ProviderError::Malformed(m) if m.contains("truncated")),
                "{e}"
            );
            let e = parse(b"", &q("EUR", &[])).unwrap_err();
            assert!(matches!(e, ProviderError::Malformed(_)), "{e}");
            let e = parse(br#"{"unexpected":true}"#, &q("EUR", &[])).unwrap_err();
            assert!(matches!(e, ProviderError::Malformed(_)), "{e}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn bad_rates_name_their_currency() {
        for (value, shown) in [
            ("0", "0"),
            ("-1.2", "-1.2"),
            ("\"abc\"", "\"abc\""),
            ("null", "null"),
            ("0.0", "0.0"),
        ] {
            let body = format!(
                r#"{{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{{"USD":1.07,"JPY":{value}}}}}"#
            );
            let err = parse_frankfurter(body.as_bytes(), &q("EUR", &[])).unwrap_err();
            assert_eq!(
                err,
                ProviderError::Invalid(InvalidData::BadRate {
                    currency: "JPY".into(),
                    value: shown.into()
                }),
                "{value}"
            );
        }
    }

    #[test]
    fn exponent_notation_is_read_exactly() {
        let body = br#"{"timestamp":1449877801,"base":"USD","rates":{"BTC":1.5e-5,"EUR":0.92}}"#;
        let s = parse_open_exchange_rates(body, &q("USD", &[])).unwrap();
        assert_eq!(rate(&s, "BTC"), "0.000015");
    }

    #[test]
    fn wrong_base_is_refused() {
        let body = br#"{"amount":1.0,"base":"USD","date":"2024-11-08","rates":{"EUR":0.92}}"#;
        assert_eq!(
            parse_frankfurter(body, &q("EUR", &[])).unwrap_err(),
            ProviderError::Invalid(InvalidData::WrongBase {
                expected: "EUR".into(),
                actual: "USD".into()
            })
        );
    }

    #[test]
    fn future_timestamps_are_refused_within_skew() {
        let tomorrow = br#"{"amount":1.0,"base":"EUR","date":"2024-11-10","rates":{"USD":1.07}}"#;
        assert!(matches!(
            parse_frankfurter(tomorrow, &q("EUR", &[])),
            Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
        ));
        // Today's date before 15:00 UTC is accepted and clamped to now.
        let today = br#"{"amount":1.0,"base":"EUR","date":"2024-11-09","rates":{"USD":1.07}}"#;
        assert_eq!(
            parse_frankfurter(today, &q("EUR", &[])).unwrap().as_of,
            now()
        );

        let ts = |t: i64| format!(r#"{{"timestamp":{t},"base":"USD","rates":{{"EUR":0.92}}}}"#);
        let within = now().timestamp() + 4 * 60;
        let beyond = now().timestamp() + 6 * 60;
        assert!(parse_open_exchange_rates(ts(within).as_bytes(), &q("USD", &[])).is_ok());
        assert!(matches!(
            parse_open_exchange_rates(ts(beyond).as_bytes(), &q("USD", &[])),
            Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
        ));
    }

    #[test]
    fn unknown_codes_are_counted_and_missing_symbols_listed() {
        let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07,"GBP":0.83,"XBTC":0.00001,"us":2}}"#;
        let wanted = [c("USD"), c("CHF")];
        let s = parse_frankfurter(body, &q("EUR", &wanted)).unwrap();
        assert_eq!(s.quotes.keys().copied().collect::<Vec<_>>(), vec![c("USD")]);
        assert_eq!(s.ignored_codes, 2);
        assert_eq!(s.missing, vec![c("CHF")]);
    }

    #[test]
    fn empty_rates_are_refused() {
        let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{}}"#;
        assert_eq!(
            parse_frankfurter(body, &q("EUR", &[])).unwrap_err(),
            ProviderError::Invalid(InvalidData::NoRates)
        );
        // Only symbols the provider does not have: nothing usable either.
        let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07}}"#;
        assert_eq!(
            parse_frankfurter(body, &q("EUR", &[c("CHF")])).unwrap_err(),
            ProviderError::Invalid(InvalidData::NoRates)
        );
    }

    const OXR: &[u8] = br#"{
        "disclaimer": "Usage subject to terms: https://openexchangerates.org/terms",
        "license": "https://openexchangerates.org/license",
        "timestamp": 1449877801,
        "base": "USD",
        "rates": {"AED": 3.672538, "AFN": 66.809999, "USD": 1, "EUR": 0.910}
    }"#;

    #[test]
    fn open_exchange_rates_latest_is_parsed() {
        let s = parse_open_exchange_rates(OXR, &q("USD", &[])).unwrap();
        assert_eq!(s.as_of, DateTime::from_timestamp(1449877801, 0).unwrap());
        assert_eq!(rate(&s, "AED"), "3.672538");
        assert_eq!(rate(&s, "EUR"), "0.91");
        // The base itself (1) is not a quote.
        assert!(!s.quotes.contains_key(&c("USD")));
        assert!(matches!(
            parse_open_exchange_rates(OXR, &q("EUR", &[])),
            Err(ProviderError::Invalid(InvalidData::WrongBase { .. }))
        ));
    }

    #[test]
    fn base_listed_with_a_rate_other_than_one_is_refused() {
        let body = br#"{"timestamp":1449877801,"base":"USD","rates":{"USD":1.2,"EUR":0.9}}"#;
        assert!(matches!(
            parse_open_exchange_rates(body, &q("USD", &[])),
            Err(ProviderError::Invalid(InvalidData::BadRate { currency, .. })) if currency == "USD"
        ));
    }

    #[test]
    fn open_exchange_rates_error_payload_is_reported() {
        let body = br#"{"error":true,"status":401,"message":"invalid_app_id","description":"Invalid App ID provided. Please sign up at https://openexchangerates.org/signup, or contact support@openexchangerates.org."}"#;
        let err = parse_open_exchange_rates(body, &q("USD", &[])).unwrap_err();
        assert!(
            matches!(&err, ProviderError::Reported(m) if m.starts_with("invalid_app_id: Invalid App ID")),
            "{err}"
        );
        assert!(
            ProviderKind::OpenExchangeRates
                .error_message(body)
                .unwrap()
                .starts_with("invalid_app_id")
        );
    }

    const ERA: &[u8] = br#"{
        "result": "success",
        "documentation": "https://www.exchangerate-api.com/docs",
        "terms_of_use": "https://www.exchangerate-api.com/terms",
        "time_last_update_unix": 1585267200,
        "time_last_update_utc": "Fri, 27 Mar 2020 00:00:00 +0000",
        "time_next_update_unix": 1585353700,
        "base_code": "USD",
        "conversion_rates": {"USD": 1, "AUD": 1.4817, "BGN": 1.7741, "CAD": 1.3168}
    }"#;

    #[test]
    fn exchangerate_api_latest_is_parsed() {
        let wanted = [c("AUD"), c("CAD")];
        let s = parse_exchangerate_api(ERA, &q("USD", &wanted)).unwrap();
        assert_eq!(s.as_of, DateTime::from_timestamp(1585267200, 0).unwrap());
        assert_eq!(s.quotes.len(), 2);
        assert_eq!(rate(&s, "AUD"), "1.4817");
        assert!(s.missing.is_empty());
    }

    #[test]
    fn exchangerate_api_error_payload_is_reported() {
        let err = parse_exchangerate_api(
            br#"{"result":"error","error-type":"invalid-key"}"#,
            &q("USD", &[]),
        )
        .unwrap_err();
        assert_eq!(err, ProviderError::Reported("invalid-key".into()));
        assert_eq!(
            ProviderKind::ExchangeRateApi
                .error_message(br#"{"result":"error","error-type":"quota-reached"}"#),
            Some("quota-reached".into())
        );
    }

    pub(crate) const ECB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender>
		<gesmes:name>European Central Bank</gesmes:name>
	</gesmes:Sender>
	<Cube>
		<Cube time='2024-11-08'>
			<Cube currency='USD' rate='1.0788'/>
			<Cube currency='JPY' rate='164.79'/>
			<Cube currency='GBP' rate='0.83050'/>
		</Cube>
	</Cube>
</gesmes:Envelope>"#;

    #[test]
    fn ecb_daily_xml_is_parsed() {
        let s = parse_ecb_daily_xml(ECB_XML.as_bytes(), &q("EUR", &[])).unwrap();
        assert_eq!(s.provider, ProviderKind::Ecb);
        assert_eq!(s.base, c("EUR"));
        assert_eq!(
            s.as_of,
            Utc.with_ymd_and_hms(2024, 11, 8, 15, 0, 0).unwrap()
        );
        assert_eq!(s.quotes.len(), 3);
        assert_eq!(rate(&s, "GBP"), "0.8305");
        assert_eq!(rate(&s, "JPY"), "164.79");
    }

    #[test]
    fn ecb_ninety_day_file_uses_the_newest_day() {
        let xml = ECB_XML.replace(
            "</Cube>\n\t</Cube>",
            "</Cube>\n\t\t<Cube time='2024-11-07'><Cube currency='USD' rate='2'/><Cube currency='CHF' rate='0.9'/></Cube>\n\t</Cube>",
        );
        let s = parse_ecb_daily_xml(xml.as_bytes(), &q("EUR", &[])).unwrap();
        assert_eq!(rate(&s, "USD"), "1.0788");
        assert!(!s.quotes.contains_key(&c("CHF")));
    }

    #[test]
    fn ecb_bad_documents_are_refused() {
        let truncated = &ECB_XML[..ECB_XML.len() - 40];
        assert!(matches!(
            parse_ecb_daily_xml(truncated.as_bytes(), &q("EUR", &[])),
            Err(ProviderError::Malformed(_))
        ));
        assert!(matches!(
            parse_ecb_daily_xml(b"<html><body>Maintenance</body></html>", &q("EUR", &[])),
            Err(ProviderError::Malformed(m)) if m.contains("envelope")
        ));
        assert!(matches!(
            parse_ecb_daily_xml(b"{\"json\":1}", &q("EUR", &[])),
            Err(ProviderError::Malformed(_))
        ));
        let negative = ECB_XML.replace("rate='164.79'", "rate='-164.79'");
        assert!(matches!(
            parse_ecb_daily_xml(negative.as_bytes(), &q("EUR", &[])),
            Err(ProviderError::Invalid(InvalidData::BadRate { currency, .. })) if currency == "JPY"
        ));
        let future = ECB_XML.replace("2024-11-08", "2024-12-01");
        assert!(matches!(
            parse_ecb_daily_xml(future.as_bytes(), &q("EUR", &[])),
            Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
        ));
        let empty_day = ECB_XML
            .lines()
            .filter(|l| !l.contains("currency="))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            parse_ecb_daily_xml(empty_day.as_bytes(), &q("EUR", &[])).unwrap_err(),
            ProviderError::Invalid(InvalidData::NoRates)
        );
    }

    #[test]
    fn retryability_follows_the_status() {
        let status = |s: u16| ProviderError::Status {
            status: s,
            retry_after: None,
            message: None,
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(ProviderError::Timeout("x".into()).is_retryable());
        assert!(ProviderError::Transport("refused".into()).is_retryable());
        assert!(!ProviderError::Invalid(InvalidData::NoRates).is_retryable());
    }

    #[test]
    fn snapshots_can_be_rebased_through_a_quoted_currency() {
        let s = parse_ecb_daily_xml(ECB_XML.as_bytes(), &q("EUR", &[])).unwrap();
        let usd = s.rebased(c("USD")).unwrap();
        assert_eq!(usd.base, c("USD"));
        assert_eq!(
            usd.quotes[&c("EUR")],
            Rate::parse("1.0788").unwrap().inverse()
        );
        assert!(!usd.quotes.contains_key(&c("USD")));
        assert!(s.rebased(c("CHF")).is_none());
    }
}

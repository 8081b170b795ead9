//! Open Exchange Rates (`openexchangerates.org`): JSON latest rates, USD base on the free plan,
//! API key required.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::*;

#[derive(Deserialize)]
pub(super) struct OxrError {
    pub(super) error: bool,
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    pub(super) description: String,
}

impl OxrError {
    pub(super) fn describe(self) -> String {
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

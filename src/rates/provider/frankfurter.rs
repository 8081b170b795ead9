//! Frankfurter (`api.frankfurter.app`): JSON latest rates for any base, no API key.

use std::collections::BTreeMap;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::*;

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
pub(super) struct FrankfurterError {
    pub(super) message: String,
}

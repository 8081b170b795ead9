//! ExchangeRate-API v6: JSON latest rates for any base, API key required.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::*;

#[derive(Deserialize)]
pub(super) struct EraError {
    pub(super) result: String,
    #[serde(rename = "error-type", default)]
    pub(super) error_type: String,
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

//! Setting values that have a type of their own, parsed once when the settings load so that a
//! bad value stops the process at start-up, naming its key, instead of reaching a client.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A rates provider the service knows how to call and parse. The names are settings vocabulary
/// (`rates.provider`, `rates.fallbacks`); what each provider does lives in `rates::provider`.
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
    /// Every provider, in the order the settings documentation lists them.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Frankfurter,
        ProviderKind::Ecb,
        ProviderKind::OpenExchangeRates,
        ProviderKind::ExchangeRateApi,
    ];

    /// Whether requests need an API key (app id): settings without one are refused at load.
    pub fn needs_api_key(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenExchangeRates | ProviderKind::ExchangeRateApi
        )
    }

    /// The name used in settings, logs and the `provider` field of stored rates.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Frankfurter => "frankfurter",
            ProviderKind::Ecb => "ecb",
            ProviderKind::OpenExchangeRates => "openexchangerates",
            ProviderKind::ExchangeRateApi => "exchangerate_api",
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

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An absolute http(s) URL from the settings (a provider's base URL), checked when they load.
/// Kept as written (trimmed), since providers' paths are appended to it as text.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let parsed =
            reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{text}` is not an http(s) URL"));
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An optional URL setting: empty (as `CCS__RATES__PROVIDER_URL=` sets it) means none.
pub(super) fn optional_url<'de, D>(deserializer: D) -> Result<Option<HttpUrl>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// An optional secret setting: empty (`api_key = ""` in `base.toml`, or the variable set to
/// nothing) means none.
pub(super) fn optional_secret<'de, D>(
    deserializer: D,
) -> Result<Option<secrecy::SecretString>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(secrecy::SecretString::from(text)))
}

/// A `tracing` filter directive (`info,sqlx=warn`), checked when the settings load: a typo
/// such as `inf` stops start-up naming `log.level` instead of silently logging at `info`.
#[derive(Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// The filter, ready for the subscriber.
    pub fn to_env_filter(&self) -> tracing_subscriber::EnvFilter {
        // Parsed once already (see `FromStr`); a second parse of the same text cannot fail, and
        // `info` is only the type system's answer to "what if it did".
        tracing_subscriber::EnvFilter::try_new(&self.0)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogFilter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        // `EnvFilter::try_new` skips directives it cannot parse instead of failing (it only
        // warns on stderr), so each directive is checked on its own.
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            directive
                .parse::<tracing_subscriber::filter::Directive>()
                .map_err(|e| format!("`{directive}` is not a tracing filter directive: {e}"))?;
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A provider tried when the primary fails, written `kind` or `kind=url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackProvider {
    pub kind: ProviderKind,
    /// Its base URL, or `None` for the provider's public one.
    pub url: Option<HttpUrl>,
}

/// As the start-up log names it: `ecb` or `ecb (http://mirror…)`.
impl fmt::Display for FallbackProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            Some(url) => write!(f, "{} ({url})", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl FromStr for FallbackProvider {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (kind, url) = match spec.split_once('=') {
            Some((kind, url)) => (kind, Some(url.parse::<HttpUrl>()?)),
            None => (spec, None),
        };
        let kind: ProviderKind = kind.parse().map_err(|e: UnknownProvider| e.to_string())?;
        Ok(FallbackProvider { kind, url })
    }
}

/// `rates.fallbacks`: a list of `kind` or `kind=url`; empty entries are skipped, so that
/// `CCS__RATES__FALLBACKS=` (empty) means no fallbacks.
pub(super) fn fallbacks<'de, D>(deserializer: D) -> Result<Vec<FallbackProvider>, D::Error>
where
    D: Deserializer<'de>,
{
    let specs = Vec::<String>::deserialize(deserializer)?;
    specs
        .iter()
        .filter(|s| !s.trim().is_empty())
        .enumerate()
        .map(|(i, spec)| {
            spec.trim()
                .parse()
                .map_err(|e| serde::de::Error::custom(format!("rates.fallbacks[{i}]: {e}")))
        })
        .collect()
}

/// One named source of `rates.sources`, written `name=kind@url` or `name=kind` (the kind's
/// public URL). The name is what provenance and the monitor show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSource {
    /// Lowercase letters, digits, `_` and `-`; unique among the sources.
    pub name: String,
    /// Which payload format it speaks.
    pub kind: ProviderKind,
    /// Its base URL, or `None` for the kind's public one.
    pub url: Option<HttpUrl>,
}

impl FromStr for RateSource {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not `name=kind@url` or `name=kind`"))?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > 40
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "source name `{name}`: use 1 to 40 lowercase letters, digits, `_` or `-`"
            ));
        }
        let (kind, url) = match rest.split_once('@') {
            Some((kind, url)) => (kind, Some(url.trim().parse::<HttpUrl>()?)),
            None => (rest, None),
        };
        let kind: ProviderKind = kind.parse().map_err(|e: UnknownProvider| e.to_string())?;
        Ok(RateSource {
            name: name.to_owned(),
            kind,
            url,
        })
    }
}

/// `rates.sources`: a list of `name=kind@url`; empty entries are skipped, so that
/// `CCS__RATES__SOURCES=` (empty) means none (the `rates.provider` chain is the one source).
pub(super) fn sources<'de, D>(deserializer: D) -> Result<Vec<RateSource>, D::Error>
where
    D: Deserializer<'de>,
{
    let specs = Vec::<String>::deserialize(deserializer)?;
    let mut out: Vec<RateSource> = Vec::new();
    for (i, spec) in specs.iter().filter(|s| !s.trim().is_empty()).enumerate() {
        let source: RateSource = spec
            .trim()
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("rates.sources[{i}]: {e}")))?;
        if out.iter().any(|s| s.name == source.name) {
            return Err(serde::de::Error::custom(format!(
                "rates.sources[{i}]: the name `{}` is used twice",
                source.name
            )));
        }
        out.push(source);
    }
    Ok(out)
}

/// `rates.source_keys`: API keys by source name, written `name=KEY`. Never printed.
#[derive(Clone, Default)]
pub struct SourceKeys(pub std::collections::BTreeMap<String, secrecy::SecretString>);

impl fmt::Debug for SourceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl<'de> Deserialize<'de> for SourceKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let specs = Vec::<String>::deserialize(deserializer)?;
        let mut keys = std::collections::BTreeMap::new();
        for (i, spec) in specs.iter().filter(|s| !s.trim().is_empty()).enumerate() {
            // The message never repeats the entry: it holds a key.
            let (name, key) = spec
                .split_once('=')
                .filter(|(n, k)| !n.trim().is_empty() && !k.trim().is_empty())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("rates.source_keys[{i}]: expected `name=KEY`"))
                })?;
            keys.insert(
                name.trim().to_owned(),
                secrecy::SecretString::from(key.trim().to_owned()),
            );
        }
        Ok(SourceKeys(keys))
    }
}

/// A cron expression with seconds (6 or 7 fields), in the dialect tokio-cron-scheduler uses,
/// parsed when the settings load.
#[derive(Clone)]
pub struct CronExpression {
    text: String,
    cron: croner::Cron,
}

impl CronExpression {
    /// The expression as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed schedule.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl FromStr for CronExpression {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(text)
            .map_err(|e| {
                format!("`{text}` is not a cron expression with seconds (6 or 7 fields): {e}")
            })?;
        Ok(CronExpression {
            text: text.to_owned(),
            cron,
        })
    }
}

impl fmt::Debug for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<&str> for CronExpression {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl<'de> Deserialize<'de> for CronExpression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim().parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_is_a_kind_with_an_optional_url() {
        assert_eq!(
            "ECB".parse::<FallbackProvider>().unwrap(),
            FallbackProvider {
                kind: ProviderKind::Ecb,
                url: None
            }
        );
        let f: FallbackProvider = "frankfurter=http://127.0.0.1:9/v1".parse().unwrap();
        assert_eq!(f.kind, ProviderKind::Frankfurter);
        assert_eq!(
            f.url.as_ref().map(HttpUrl::as_str),
            Some("http://127.0.0.1:9/v1")
        );
        assert!("fixer".parse::<FallbackProvider>().is_err());
        assert!("ecb=ftp://x".parse::<FallbackProvider>().is_err());
        assert!("ecb=not a url".parse::<FallbackProvider>().is_err());
    }

    #[test]
    fn a_cron_expression_needs_seconds_and_valid_fields() {
        let every_minute: CronExpression = "0 * * * * *".parse().unwrap();
        assert_eq!(every_minute.as_str(), "0 * * * * *");
        assert!("* * * * *".parse::<CronExpression>().is_err());
        assert!("0 61 * * * *".parse::<CronExpression>().is_err());
        assert!("every minute".parse::<CronExpression>().is_err());
    }
}

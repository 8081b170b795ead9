//! The read side of rates: the rate between two currencies ([`quote`]), tables of rates
//! (latest, as of an instant), the newest publication per provider, and the errors of every
//! rates request. Fetching and storing live in [`super::fetch`], pricing an amount in
//! [`super::pricing`]. Currencies are asked of [`crate::currencies::service`] through the
//! latest-rates cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sha2::Digest;
use utoipa::ToSchema;

use super::Rates;
use super::cache::{LatestEntry, LatestQuery, RenderedTable};
use super::store::{self};
use super::view::RatesView;
use crate::currencies::{Currency, CurrencyCode};
use crate::error::ApiError;
use crate::money::{MoneyError, Rate};

/// Why a rates request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    /// A parameter that does not parse or is out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// Query parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The code is well-formed but not a currency of this service.
    #[error("{field}: currency {code} is not supported")]
    CurrencyNotSupported {
        /// The code asked for.
        code: CurrencyCode,
        /// The request field or query parameter that named it.
        field: &'static str,
    },
    /// The currency exists but is disabled.
    #[error("{field}: currency {code} is disabled")]
    CurrencyDisabled {
        /// The code asked for.
        code: CurrencyCode,
        /// The request field or query parameter that named it.
        field: &'static str,
    },
    /// The currency was retired.
    #[error("{field}: currency {code} is retired")]
    CurrencyRetired {
        /// The code asked for.
        code: CurrencyCode,
        /// The request field or query parameter that named it.
        field: &'static str,
    },
    /// Nothing is stored yet, or nothing at or before the requested instant.
    #[error("{0}")]
    NoRates(String),
    /// The stored rates do not quote this currency.
    #[error("no rate is stored for {0}")]
    NotQuoted(CurrencyCode),
    /// The amount is not acceptable for the source currency.
    #[error("amount: {0}")]
    Amount(#[from] MoneyError),
    /// The rate is older than `rates.max_age_secs` and `conversions.stale_rates` refuses it
    /// (for what is recorded or held: a conversion, a rate lock).
    #[error("the newest {from}/{to} rate is from {as_of}, older than the allowed maximum age")]
    StaleRate {
        /// Source currency.
        from: CurrencyCode,
        /// Target currency.
        to: CurrencyCode,
        /// The provider's timestamp of the rate.
        as_of: DateTime<Utc>,
    },
    /// The sources configured in `rates.sources` do not agree on a rate of this currency now
    /// (below the quorum at the newest fetch, or no consensus younger than
    /// `rates.max_age_secs`): nothing is priced on it until a fetch brings one.
    #[error(
        "no consensus of the rates sources for {code}: nothing is priced on it until the next \
         fetch brings one"
    )]
    RateUnavailable {
        /// The currency.
        code: CurrencyCode,
        /// Seconds until the next fetch.
        retry_after_secs: u64,
    },
    /// Anything else (database, Redis): a 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The rate between two currencies at one instant, and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct RateQuote {
    /// Source currency.
    pub from: CurrencyCode,
    /// Target currency.
    pub to: CurrencyCode,
    /// Units of `to` per one `from`, at full precision (see [`crate::money`]).
    pub rate: Rate,
    /// Provider timestamp of the rates used.
    pub as_of: DateTime<Utc>,
    /// When we last fetched that publication.
    pub fetched_at: DateTime<Utc>,
    /// Provider name.
    pub provider: String,
    /// Older than `rates.max_age_secs` at the time asked for (now for latest).
    pub stale: bool,
    /// `rate_quotes` row of the pivot → `from` side; `None` when `from` is the pivot.
    pub from_quote_id: Option<i64>,
    /// `rate_quotes` row of the pivot → `to` side; `None` when `to` is the pivot.
    pub to_quote_id: Option<i64>,
    /// The sources whose consensus made the rate (either side), sorted; empty for a single
    /// provider.
    pub sources: Vec<String>,
    /// A side is served from a consensus its sources no longer reach (see
    /// [`RatesView::degraded`]): the code of that side.
    pub degraded: Option<CurrencyCode>,
}

impl RateQuote {
    /// The names a price made on this rate records as its `rate_sources`: the consensus's
    /// sources, or the one provider of a single-provider feed (`seed` for the embedded
    /// history).
    pub fn rate_sources(&self) -> Vec<String> {
        if self.sources.is_empty() {
            vec![self.provider.clone()]
        } else {
            self.sources.clone()
        }
    }
}

/// Which currencies a read accepts: new business needs usable ones, history any known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// The rates in force: the currency must be usable.
    Latest,
    /// A past instant: any known currency.
    History,
}

pub(crate) fn check_currency<'e>(
    entry: &'e LatestEntry,
    code: CurrencyCode,
    usage: Use,
    field: &'static str,
) -> Result<&'e Currency, RatesError> {
    let currency = entry
        .currencies
        .get(&code)
        .ok_or(RatesError::CurrencyNotSupported { code, field })?;
    if usage == Use::Latest {
        if currency.retired {
            return Err(RatesError::CurrencyRetired { code, field });
        }
        if !currency.enabled {
            return Err(RatesError::CurrencyDisabled { code, field });
        }
    }
    Ok(currency)
}

fn is_stale(state: &Rates, as_of: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    let max_age = TimeDelta::seconds(crate::settings::secs(state.settings.max_age_secs));
    at - as_of > max_age
}

/// The view for `at` (the cached latest when `None`).
async fn view_at(
    state: &Rates,
    entry: &LatestEntry,
    at: Option<DateTime<Utc>>,
) -> Result<Arc<RatesView>, RatesError> {
    match at {
        None => entry
            .view
            .clone()
            .ok_or_else(|| RatesError::NoRates("no rates have been fetched yet".into())),
        Some(t) => {
            let snapshot = store::snapshot_at(&state.db, Some(t))
                .await?
                .ok_or_else(|| {
                    RatesError::NoRates(format!(
                        "no rates are stored at or before {}",
                        t.to_rfc3339()
                    ))
                })?;
            Ok(Arc::new(
                RatesView::load(&state.db, snapshot, Some(t)).await?,
            ))
        }
    }
}

/// The rate from → to in force now (`at = None`, served from memory) or at `at`. `from` and
/// `to` must be usable for the latest rates; any known currency is accepted for a past instant.
pub async fn quote(
    state: &Rates,
    from: CurrencyCode,
    to: CurrencyCode,
    at: Option<DateTime<Utc>>,
) -> Result<RateQuote, RatesError> {
    let entry = state.runtime.cache.get(state).await?;
    quote_in(state, &entry, from, to, at).await
}

/// [`quote`] on a latest-rates entry the caller holds already (the pricer reads it once per
/// request).
pub async fn quote_in(
    state: &Rates,
    entry: &LatestEntry,
    from: CurrencyCode,
    to: CurrencyCode,
    at: Option<DateTime<Utc>>,
) -> Result<RateQuote, RatesError> {
    let usage = if at.is_some() {
        Use::History
    } else {
        Use::Latest
    };
    check_currency(entry, from, usage, "from")?;
    check_currency(entry, to, usage, "to")?;
    let view = view_at(state, entry, at).await?;
    let (rate, a, b) = view
        .cross(from, to)
        .ok_or_else(|| RatesError::NotQuoted(if view.quotes_currency(from) { to } else { from }))?;
    let s = &view.snapshot;
    Ok(RateQuote {
        from,
        to,
        rate,
        as_of: s.as_of,
        fetched_at: s.last_seen_at,
        provider: s.provider.clone(),
        stale: is_stale(state, s.as_of, at.unwrap_or_else(|| state.clock.now())),
        from_quote_id: a.quote_id,
        to_quote_id: b.quote_id,
        sources: {
            let mut names: Vec<String> = view
                .sources_of(from)
                .iter()
                .chain(view.sources_of(to))
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            names
        },
        degraded: [from, to].into_iter().find(|c| view.degraded(*c)),
    })
}

/// Rates of several currencies against one base, as `latest` and `at` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatesTable {
    /// The base asked for.
    pub base: CurrencyCode,
    /// Provider timestamp of the rates.
    pub as_of: DateTime<Utc>,
    /// When we last fetched that publication.
    pub fetched_at: DateTime<Utc>,
    /// Provider name.
    pub provider: String,
    /// Older than `rates.max_age_secs` at the instant asked for.
    pub stale: bool,
    /// Units of each currency per one `base`, as decimal strings.
    #[schema(value_type = BTreeMap<String, String>)]
    pub rates: BTreeMap<CurrencyCode, Rate>,
    /// Currencies (among `rates` and `base`) whose sources no longer agree: the rate shown is
    /// their last consensus, and nothing is priced on them until a fetch brings a new one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub degraded: Vec<CurrencyCode>,
    /// With `expand=sources`: per currency (on the pivot), the sources used and the ones
    /// excluded with their values and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, SourcesOf>>)]
    pub sources: Option<BTreeMap<CurrencyCode, SourcesOf>>,
    /// Identifies the stored snapshot (for ETags).
    #[serde(skip)]
    pub snapshot_id: i64,
}

/// Where one currency's consensus came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourcesOf {
    /// The sources whose values agreed.
    pub used: Vec<String>,
    /// The sources left out.
    #[schema(value_type = Vec<Object>)]
    pub excluded: serde_json::Value,
}

/// Rates of `symbols` (default: every enabled currency that is quoted) against `base`, now or at
/// `at`.
pub async fn rates_table(
    state: &Rates,
    base: CurrencyCode,
    symbols: Option<Vec<CurrencyCode>>,
    at: Option<DateTime<Utc>>,
    expand_sources: bool,
) -> Result<RatesTable, RatesError> {
    let entry = state.runtime.cache.get(state).await?;
    table_of(state, &entry, base, symbols, at, expand_sources).await
}

/// Queries rendered per cache entry at most; past it, answers are rendered and not kept.
const MAX_RENDERED: usize = 1_000;

/// [`rates_table`] of the latest rates as JSON with its ETag, rendered once per cache entry,
/// query and staleness (the serialising and hashing were most of a warm `latest` request's
/// own work). A new entry (new rates, a currency change, the TTL) starts with none.
pub async fn latest_rendered(
    state: &Rates,
    base: CurrencyCode,
    symbols: Option<Vec<CurrencyCode>>,
    expand_sources: bool,
) -> Result<Arc<RenderedTable>, RatesError> {
    let entry = state.runtime.cache.get(state).await?;
    let stale = entry
        .view
        .as_ref()
        .is_some_and(|v| is_stale(state, v.snapshot.as_of, state.clock.now()));
    let query: LatestQuery = (base, symbols.clone(), expand_sources, stale);
    if let Some(hit) = entry
        .rendered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&query)
    {
        return Ok(hit.clone());
    }
    let table = table_of(state, &entry, base, symbols, None, expand_sources).await?;
    let body = serde_json::to_vec(&table).map_err(anyhow::Error::from)?;
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&body))[..32]);
    let rendered = Arc::new(RenderedTable {
        body: body.into(),
        etag,
    });
    let mut memo = entry.rendered.lock().unwrap_or_else(|p| p.into_inner());
    if memo.len() < MAX_RENDERED {
        memo.insert(query, rendered.clone());
    }
    Ok(rendered)
}

async fn table_of(
    state: &Rates,
    entry: &LatestEntry,
    base: CurrencyCode,
    symbols: Option<Vec<CurrencyCode>>,
    at: Option<DateTime<Utc>>,
    expand_sources: bool,
) -> Result<RatesTable, RatesError> {
    let usage = if at.is_some() {
        Use::History
    } else {
        Use::Latest
    };
    check_currency(entry, base, usage, "base")?;
    if let Some(symbols) = &symbols {
        for code in symbols {
            check_currency(entry, *code, usage, "symbols")?;
        }
    }
    let view = view_at(state, entry, at).await?;
    if !view.quotes_currency(base) {
        return Err(RatesError::NotQuoted(base));
    }
    let wanted: Vec<CurrencyCode> = match symbols {
        Some(list) => list,
        None => {
            let mut all: Vec<CurrencyCode> = entry
                .currencies
                .values()
                .filter(|c| c.usable() && c.code != base && view.quotes_currency(c.code))
                .map(|c| c.code)
                .collect();
            all.sort();
            all
        }
    };
    let mut rates = BTreeMap::new();
    for code in wanted {
        // Kept per view and pair (see `RatesView::cross`), as `GET /convert`'s are.
        let (rate, _, _) = view.cross(base, code).ok_or(RatesError::NotQuoted(code))?;
        rates.insert(code, rate);
    }
    let degraded: Vec<CurrencyCode> = std::iter::once(base)
        .chain(rates.keys().copied())
        .filter(|c| view.degraded(*c))
        .collect();
    let sources = expand_sources.then(|| {
        std::iter::once(base)
            .chain(rates.keys().copied())
            .filter_map(|c| {
                view.provenance.get(&c).map(|p| {
                    (
                        c,
                        SourcesOf {
                            used: p.used.clone(),
                            excluded: p.excluded.clone(),
                        },
                    )
                })
            })
            .collect()
    });
    let s = &view.snapshot;
    Ok(RatesTable {
        degraded,
        sources,
        base,
        as_of: s.as_of,
        fetched_at: s.last_seen_at,
        provider: s.provider.clone(),
        stale: is_stale(state, s.as_of, at.unwrap_or_else(|| state.clock.now())),
        rates,
        snapshot_id: s.id,
    })
}

/// The newest publication stored from one provider, for health pages.
#[derive(Debug, Clone)]
pub struct ProviderFetch {
    /// Provider name.
    pub provider: String,
    /// Base of its quotes.
    pub base: CurrencyCode,
    /// Provider timestamp of the publication.
    pub as_of: DateTime<Utc>,
    /// When we last fetched that publication.
    pub last_seen_at: DateTime<Utc>,
    /// Number of currencies it quotes.
    pub currencies: usize,
    /// Older than `rates.max_age_secs` now.
    pub stale: bool,
}

/// The newest stored publication of each provider, with its staleness by `rates.max_age_secs`.
pub async fn latest_per_provider(state: &Rates) -> Result<Vec<ProviderFetch>, RatesError> {
    let now = state.clock.now();
    Ok(store::newest_per_provider(&state.db)
        .await?
        .into_iter()
        .map(|s| ProviderFetch {
            stale: is_stale(state, s.as_of, now),
            provider: s.provider,
            base: s.base,
            as_of: s.as_of,
            last_seen_at: s.last_seen_at,
            currencies: s.currencies.len(),
        })
        .collect())
}

/// One sentence about the rates the service serves right now: which provider published the
/// newest ones, when, and whether they are stale (`seed` rates were never fetched). Used in the
/// start-up summary and after the first fetch of a process.
pub async fn describe_served_rates(state: &Rates) -> anyhow::Result<String> {
    let newest = latest_per_provider(state)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .max_by_key(|p| (p.as_of, p.last_seen_at));
    Ok(match newest {
        None => "no rates stored yet (run `currency-conversion seed` for a year of embedded \
                 ECB rates)"
            .to_owned(),
        Some(p) => {
            let source = if p.provider == super::import::SEED_PROVIDER {
                "seed rates (embedded ECB history, never fetched)".to_owned()
            } else {
                format!("{} rates", p.provider)
            };
            let freshness = if p.stale {
                format!(
                    "stale: older than rates.max_age_secs = {}s",
                    state.settings.max_age_secs
                )
            } else {
                "fresh".to_owned()
            };
            format!(
                "serving {source} published {} ({freshness})",
                p.as_of.format("%Y-%m-%d %H:%M UTC")
            )
        }
    })
}

/// The configured provider chain in words: `frankfurter (https://…), then ecb`.
pub fn describe_providers(settings: &crate::settings::RatesSettings) -> String {
    let url = settings
        .provider_url
        .as_ref()
        .map_or(settings.provider.default_base_url(), |u| u.as_str());
    let mut text = format!("{} ({url})", settings.provider);
    for fallback in &settings.fallbacks {
        text.push_str(", then ");
        text.push_str(&fallback.to_string());
    }
    text
}

impl From<RatesError> for ApiError {
    fn from(e: RatesError) -> Self {
        use RatesError as R;
        match e {
            R::Invalid { field, message } => ApiError::validation(field, message),
            R::CurrencyNotSupported { code, field } => ApiError::UnprocessableField {
                slug: "currency-not-supported",
                field,
                message: format!("currency {code} is not supported by this service"),
            },
            R::CurrencyDisabled { code, field } => ApiError::UnprocessableField {
                slug: "currency-disabled",
                field,
                message: format!("currency {code} is disabled"),
            },
            R::CurrencyRetired { code, field } => ApiError::UnprocessableField {
                slug: "currency-retired",
                field,
                message: format!("currency {code} is retired; only its history can be read"),
            },
            R::NoRates(detail) => ApiError::NotFoundAs {
                slug: "no-rates",
                detail,
            },
            R::NotQuoted(code) => ApiError::NotFoundAs {
                slug: "no-rates",
                detail: format!("no rate is stored for {code}"),
            },
            R::Amount(e) => ApiError::validation("amount", e.to_string()),
            e @ R::StaleRate { .. } => ApiError::Unprocessable {
                slug: "stale-rate",
                detail: e.to_string(),
            },
            e @ R::RateUnavailable {
                retry_after_secs, ..
            } => ApiError::UnavailableAs {
                slug: "rate-unavailable",
                detail: e.to_string(),
                retry_after_secs,
            },
            R::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

pub use super::fetch::{
    FetchReport, StoreOutcome, any_rates_stored, fetch_and_store, known_currencies, store_snapshot,
};

//! Rates use cases: fetch and store a snapshot ([`fetch_and_store`], called by the CLI and the
//! scheduled job), and every read (latest, as of an instant, series, conversion quotes). Money
//! arithmetic is delegated to [`crate::money`]; currencies are asked of
//! [`crate::currencies::service`] (through the latest-rates cache).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use bigdecimal::BigDecimal;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Rates;
use super::cache::{self, LatestEntry};
use super::store::{self, NewSnapshot, QuoteBatch};
use super::view::RatesView;
use crate::currencies::{Currency, CurrencyCode};
use crate::error::ApiError;
use crate::money::{self, Amount, MoneyError, Rate};

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
    #[error("currency {0} is not supported")]
    CurrencyNotSupported(CurrencyCode),
    /// The currency exists but is disabled.
    #[error("currency {0} is disabled")]
    CurrencyDisabled(CurrencyCode),
    /// The currency was retired.
    #[error("currency {0} is retired")]
    CurrencyRetired(CurrencyCode),
    /// Nothing is stored yet, or nothing at or before the requested instant.
    #[error("{0}")]
    NoRates(String),
    /// The stored rates do not quote this currency.
    #[error("no rate is stored for {0}")]
    NotQuoted(CurrencyCode),
    /// The amount is not acceptable for the source currency.
    #[error("amount: {0}")]
    Amount(#[from] MoneyError),
    /// Anything else (database, Redis): a 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> RatesError {
    RatesError::Invalid {
        field,
        message: message.into(),
    }
}

/// Largest number of symbols in one request.
pub const MAX_SYMBOLS: usize = 200;

/// Parses a currency code given in query parameter `field`.
pub fn parse_code(field: &'static str, raw: &str) -> Result<CurrencyCode, RatesError> {
    CurrencyCode::parse(raw.trim()).map_err(|e| invalid(field, e.to_string()))
}

/// Parses `symbols=EUR,GBP`: `None` when absent; empty, malformed or duplicate entries are
/// refused.
pub fn parse_symbols(raw: Option<&str>) -> Result<Option<Vec<CurrencyCode>>, RatesError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.trim().is_empty() {
        return Err(invalid(
            "symbols",
            "must list at least one currency, or be left out for all",
        ));
    }
    let mut out = Vec::new();
    for part in raw.split(',') {
        if part.trim().is_empty() {
            return Err(invalid("symbols", "contains an empty entry"));
        }
        let code = parse_code("symbols", part)?;
        if out.contains(&code) {
            return Err(invalid("symbols", format!("{code} is listed twice")));
        }
        out.push(code);
    }
    if out.len() > MAX_SYMBOLS {
        return Err(invalid(
            "symbols",
            format!("at most {MAX_SYMBOLS} currencies"),
        ));
    }
    Ok(Some(out))
}

/// What one fetch did. Printed by `currency-conversion rates fetch`.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// Provider whose snapshot was used.
    pub provider: String,
    /// Base of the stored quotes (the provider's own).
    pub base: CurrencyCode,
    /// Provider timestamp of the snapshot.
    pub as_of: DateTime<Utc>,
    /// Our fetch time.
    pub fetched_at: DateTime<Utc>,
    /// What happened to the snapshot.
    pub outcome: StoreOutcome,
    /// Quotes of known currencies in the snapshot.
    pub quotes: usize,
    /// Quote rows written (currencies whose rate changed, or first seen).
    pub changed: usize,
    /// Quotes equal to the stored ones (nothing written).
    pub unchanged: usize,
    /// Codes the provider quoted that are not in the currencies table (not stored).
    pub ignored_codes: Vec<CurrencyCode>,
    /// Enabled currencies the provider did not quote.
    pub missing: Vec<CurrencyCode>,
    /// Failed attempts (provider, message) before this snapshot was obtained.
    pub failures: Vec<(String, String)>,
}

/// Outcome of storing one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StoreOutcome {
    /// A new publication was stored.
    Stored,
    /// The same publication was stored before; only `last_seen_at` moved (and any quotes of
    /// currencies it did not have before were added).
    SamePublication,
    /// Older than what is stored for this provider and base: nothing was written.
    RejectedOlder {
        /// The newest stored publication.
        stored_as_of: DateTime<Utc>,
    },
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |codes: &[CurrencyCode]| {
            codes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        writeln!(
            f,
            "provider {} base {} as of {} (fetched {})",
            self.provider,
            self.base,
            self.as_of.to_rfc3339(),
            self.fetched_at.to_rfc3339()
        )?;
        match self.outcome {
            StoreOutcome::Stored => writeln!(f, "stored a new publication")?,
            StoreOutcome::SamePublication => writeln!(f, "same publication as before")?,
            StoreOutcome::RejectedOlder { stored_as_of } => writeln!(
                f,
                "REJECTED: older than the stored publication of {}",
                stored_as_of.to_rfc3339()
            )?,
        }
        writeln!(
            f,
            "quotes {}: changed {}, unchanged {}",
            self.quotes, self.changed, self.unchanged
        )?;
        if !self.ignored_codes.is_empty() {
            writeln!(
                f,
                "ignored (not in currencies): {}",
                join(&self.ignored_codes)
            )?;
        }
        if !self.missing.is_empty() {
            writeln!(
                f,
                "enabled but not quoted by the provider: {}",
                join(&self.missing)
            )?;
        }
        for (provider, message) in &self.failures {
            writeln!(f, "failure before success: {provider}: {message}")?;
        }
        Ok(())
    }
}

/// Whether any rate has been stored yet (by a fetch, an import or the seed).
pub async fn any_rates_stored(state: &Rates) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM rate_snapshots) AS "exists!""#)
            .fetch_one(&state.db)
            .await?,
    )
}

/// Every currency in the table, usable or not, by code.
pub async fn known_currencies(state: &Rates) -> anyhow::Result<HashMap<CurrencyCode, Currency>> {
    Ok(crate::currencies::service::list(&state.db, true)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .into_iter()
        .map(|c| (c.code, c))
        .collect())
}

/// Fetches the latest rates against `rates.base` for every enabled currency, along the
/// provider chain, and stores them (change-only, one transaction). Fails when every provider
/// failed (the error lists each failure) or when the database does.
#[tracing::instrument(name = "rates.fetch_and_store", skip(state))]
pub async fn fetch_and_store(state: &Rates) -> anyhow::Result<FetchReport> {
    let now = state.clock.now();
    let currencies = known_currencies(state).await?;
    let pivot = CurrencyCode::parse(&state.settings.rates.base).context("rates.base")?;
    let mut symbols: Vec<CurrencyCode> = currencies
        .values()
        .filter(|c| c.usable() && c.code != pivot)
        .map(|c| c.code)
        .collect();
    symbols.sort();
    let client = state.runtime.client(&state.settings, &state.clock).await?;
    let outcome = client
        .fetch(pivot, &symbols, now)
        .await
        .context("fetching rates")?;
    let failures = outcome
        .failures
        .iter()
        .map(|(k, m)| (k.to_string(), m.clone()))
        .collect();
    store_snapshot(state, outcome.snapshot, &currencies, &symbols, failures).await
}

/// Stores one validated snapshot (change-only, one transaction) and announces new rates to
/// every instance. `fetch_and_store` calls it after a fetch; fixtures call it with a snapshot
/// read from a file.
pub async fn store_snapshot(
    state: &Rates,
    snapshot: crate::rates::provider::Snapshot,
    currencies: &HashMap<CurrencyCode, Currency>,
    symbols: &[CurrencyCode],
    failures: Vec<(String, String)>,
) -> anyhow::Result<FetchReport> {
    let now = state.clock.now();
    let provider = snapshot.provider.as_str();
    if !currencies.contains_key(&snapshot.base) {
        anyhow::bail!(
            "the provider's base {} is not in the currencies table; add it first",
            snapshot.base
        );
    }
    let mut ignored_codes = Vec::new();
    let mut known = BTreeMap::new();
    for (code, rate) in &snapshot.quotes {
        if currencies.contains_key(code) {
            known.insert(*code, rate.clone());
        } else {
            ignored_codes.push(*code);
        }
    }
    let missing: Vec<CurrencyCode> = symbols
        .iter()
        .filter(|c| **c != snapshot.base && !snapshot.quotes.contains_key(c))
        .copied()
        .collect();
    let mut report = FetchReport {
        provider: provider.to_owned(),
        base: snapshot.base,
        as_of: snapshot.as_of,
        fetched_at: now,
        outcome: StoreOutcome::Stored,
        quotes: known.len(),
        changed: 0,
        unchanged: 0,
        ignored_codes,
        missing,
        failures,
    };
    if !report.ignored_codes.is_empty() {
        tracing::info!(ignored = ?report.ignored_codes, "quotes of unknown currencies ignored");
    }
    if !report.missing.is_empty() {
        tracing::warn!(missing = ?report.missing, provider, "enabled currencies not quoted by the provider");
    }

    let mut tx = state.db.begin().await?;
    store::lock_feed(&mut tx, provider, snapshot.base).await?;
    if let Some(stored) = store::newest_as_of(&mut tx, provider, snapshot.base).await?
        && stored > snapshot.as_of
    {
        tracing::warn!(provider, as_of = %snapshot.as_of, %stored, "snapshot older than the stored one rejected");
        report.outcome = StoreOutcome::RejectedOlder {
            stored_as_of: stored,
        };
        return Ok(report);
    }
    let codes: Vec<CurrencyCode> = known.keys().copied().collect();
    let previous =
        store::quotes_at(&mut tx, provider, snapshot.base, &codes, snapshot.as_of).await?;
    let mut batch = QuoteBatch::default();
    for (code, rate) in &known {
        match previous.get(code) {
            Some(stored) if &stored.rate == rate => report.unchanged += 1,
            _ => batch.push(*code, snapshot.as_of, rate),
        }
    }
    let inserted = store::insert_quotes(&mut tx, provider, snapshot.base, now, &batch).await?;
    report.changed = usize::try_from(inserted).unwrap_or(usize::MAX);
    let new = store::upsert_snapshot(
        &mut tx,
        &NewSnapshot {
            provider,
            base: snapshot.base,
            as_of: snapshot.as_of,
            fetched_at: now,
            currencies: &codes,
            changed_count: report.changed,
        },
    )
    .await?;
    tx.commit().await.context("committing the rate snapshot")?;
    if !new {
        report.outcome = StoreOutcome::SamePublication;
    }
    cache::announce_new_rates(state).await;
    tracing::info!(
        provider,
        as_of = %snapshot.as_of,
        changed = report.changed,
        unchanged = report.unchanged,
        "rates stored"
    );
    Ok(report)
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
}

/// Which currencies a read accepts: new business needs usable ones, history any known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Latest,
    History,
}

fn check_currency(
    entry: &LatestEntry,
    code: CurrencyCode,
    usage: Use,
) -> Result<&Currency, RatesError> {
    let currency = entry
        .currencies
        .get(&code)
        .ok_or(RatesError::CurrencyNotSupported(code))?;
    if usage == Use::Latest {
        if currency.retired {
            return Err(RatesError::CurrencyRetired(code));
        }
        if !currency.enabled {
            return Err(RatesError::CurrencyDisabled(code));
        }
    }
    Ok(currency)
}

fn is_stale(state: &Rates, as_of: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    let max_age = TimeDelta::seconds(
        i64::try_from(state.settings.rates.max_age_secs).unwrap_or(i64::MAX / 1000),
    );
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
            Ok(Arc::new(RatesView::load(&state.db, snapshot).await?))
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
    let usage = if at.is_some() {
        Use::History
    } else {
        Use::Latest
    };
    check_currency(&entry, from, usage)?;
    check_currency(&entry, to, usage)?;
    let view = view_at(state, &entry, at).await?;
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
    /// Identifies the stored snapshot (for ETags).
    #[serde(skip)]
    pub snapshot_id: i64,
}

/// Rates of `symbols` (default: every enabled currency that is quoted) against `base`, now or at
/// `at`.
pub async fn rates_table(
    state: &Rates,
    base: CurrencyCode,
    symbols: Option<Vec<CurrencyCode>>,
    at: Option<DateTime<Utc>>,
) -> Result<RatesTable, RatesError> {
    let entry = state.runtime.cache.get(state).await?;
    let usage = if at.is_some() {
        Use::History
    } else {
        Use::Latest
    };
    check_currency(&entry, base, usage)?;
    if let Some(symbols) = &symbols {
        for code in symbols {
            check_currency(&entry, *code, usage)?;
        }
    }
    let view = view_at(state, &entry, at).await?;
    let base_rate = view.pivot_rate(base).ok_or(RatesError::NotQuoted(base))?;
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
        let side = view.pivot_rate(code).ok_or(RatesError::NotQuoted(code))?;
        let rate = if at.is_none() {
            entry.cross_rate(base, code, || Rate::cross(&base_rate.rate, &side.rate))
        } else {
            Rate::cross(&base_rate.rate, &side.rate)
        };
        rates.insert(code, rate);
    }
    let s = &view.snapshot;
    Ok(RatesTable {
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
    pub provider: String,
    /// Whether the rate is older than `rates.max_age_secs`.
    pub stale: bool,
}

/// Prices `amount` of `from` in `to`, now or at `at`. Records nothing.
pub async fn convert(
    state: &Rates,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: &str,
    at: Option<DateTime<Utc>>,
) -> Result<ConversionQuote, RatesError> {
    let entry = state.runtime.cache.get(state).await?;
    let usage = if at.is_some() {
        Use::History
    } else {
        Use::Latest
    };
    let source = check_currency(&entry, from, usage)?.clone();
    let target = check_currency(&entry, to, usage)?.clone();
    let max: BigDecimal = state
        .settings
        .conversions
        .max_amount
        .parse()
        .context("conversions.max_amount")?;
    let amount = Amount::parse(amount, from.as_str(), source.minor_units, &max)?;
    let q = quote(state, from, to, at).await?;
    let result = money::convert(amount.value(), &q.rate, target.minor_units);
    Ok(ConversionQuote {
        from,
        to,
        amount: amount.value().clone(),
        rate: q.rate,
        result,
        rate_as_of: q.as_of,
        provider: q.provider,
        stale: q.stale,
    })
}

impl From<RatesError> for ApiError {
    fn from(e: RatesError) -> Self {
        use RatesError as R;
        match e {
            R::Invalid { field, message } => ApiError::validation(field, message),
            R::CurrencyNotSupported(code) => ApiError::Unprocessable {
                slug: "currency-not-supported",
                detail: format!("currency {code} is not supported by this service"),
            },
            R::CurrencyDisabled(code) => ApiError::Unprocessable {
                slug: "currency-disabled",
                detail: format!("currency {code} is disabled"),
            },
            R::CurrencyRetired(code) => ApiError::Unprocessable {
                slug: "currency-retired",
                detail: format!("currency {code} is retired; only its history can be read"),
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
            R::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

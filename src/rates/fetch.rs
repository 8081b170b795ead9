//! The write side of rates: fetch the latest publication along the provider chain and store it
//! change-only ([`fetch_and_store`]), or store a snapshot read elsewhere ([`store_snapshot`]:
//! fixtures, the seed). Every store announces new rates to every instance.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Rates;
use super::cache;
use super::store::{self, NewSnapshot, QuoteBatch};
use crate::currencies::{Currency, CurrencyCode};

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
    let pivot = state.settings.base;
    let mut symbols: Vec<CurrencyCode> = currencies
        .values()
        .filter(|c| c.usable() && c.code != pivot)
        .map(|c| c.code)
        .collect();
    symbols.sort();
    if !state.settings.sources.is_empty() {
        return fetch_consensus(state, &currencies, &symbols).await;
    }
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

pub use super::store::CONSENSUS_FEED;

/// One fetch cycle over `rates.sources`: asks every source at once (each with its own
/// timeout, retries and breaker), makes each currency's consensus on the pivot and stores it
/// as the `consensus` feed with its provenance. A currency without a quorum keeps its last
/// consensus while that is younger than `rates.max_age_secs`, and is left out after.
async fn fetch_consensus(
    state: &Rates,
    currencies: &HashMap<CurrencyCode, Currency>,
    symbols: &[CurrencyCode],
) -> anyhow::Result<FetchReport> {
    let now = state.clock.now();
    let pivot = state.settings.base;
    let sources = state.runtime.sources(&state.settings, &state.clock).await?;
    let answers = futures_util::future::join_all(sources.iter().map(|source| async move {
        let started = std::time::Instant::now();
        let got = source.client.fetch(pivot, symbols, now).await;
        (source, got, started.elapsed())
    }))
    .await;
    let mut failures = Vec::new();
    let mut snapshots = Vec::new();
    let mut fetches = Vec::new();
    for (source, got, took) in answers {
        let name = source.name.as_str();
        let error = match got {
            Ok(outcome) => match outcome.snapshot.rebased(pivot) {
                Some(snapshot) => {
                    tracing::debug!(
                        source = name,
                        took_ms = took.as_millis(),
                        "rates source answered"
                    );
                    snapshots.push((source.name.clone(), snapshot));
                    None
                }
                None => Some(format!("does not quote the pivot {pivot}")),
            },
            Err(e) => {
                tracing::warn!(source = name, error = %e, "rates source failed");
                Some(e.to_string())
            }
        };
        if let Some(message) = &error {
            failures.push((name.to_owned(), message.clone()));
        }
        fetches.push(super::health::SourceFetch {
            source: name.to_owned(),
            error,
            latency_ms: i32::try_from(took.as_millis()).unwrap_or(i32::MAX),
            breaker: super::health::breaker_name(
                source.client.breaker_states().first().map(|(_, b)| *b),
            ),
        });
    }
    // Recorded whatever follows (every source may have failed), for the monitor.
    {
        let mut conn = state.db.acquire().await?;
        super::health::record(&mut conn, now, &fetches).await?;
    }
    let Some(as_of) = snapshots.iter().map(|(_, s)| s.as_of).max() else {
        let list: Vec<String> = failures.iter().map(|(n, m)| format!("{n}: {m}")).collect();
        anyhow::bail!("every rates source failed: {}", list.join("; "));
    };
    let rules = super::consensus::Rules {
        max_deviation_bps: state.settings.consensus.max_deviation_bps,
        quorum: state.settings.quorum(),
    };
    let values: Vec<(String, &BTreeMap<CurrencyCode, crate::money::Rate>)> = snapshots
        .iter()
        .map(|(name, s)| (name.clone(), &s.quotes))
        .collect();
    let agreed = super::consensus::agree_all(&values, rules);
    warn_of_outliers(&snapshots, &agreed);
    let last: BTreeMap<CurrencyCode, store::Agreed> = {
        let mut conn = state.db.acquire().await?;
        store::consensus_at(&mut conn, pivot, symbols, now)
            .await?
            .into_iter()
            .filter_map(|(code, row)| row.last_agreed.map(|a| (code, a)))
            .collect()
    };
    let max_age = chrono::TimeDelta::seconds(crate::settings::secs(state.settings.max_age_secs));
    let none = super::consensus::Agreement {
        rate: None,
        used: Vec::new(),
        excluded: Vec::new(),
    };
    let mut quotes = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut below_quorum = Vec::new();
    for code in symbols {
        let agreement = agreed.get(code).unwrap_or(&none);
        let quoted_by_any = !agreement.used.is_empty() || !agreement.excluded.is_empty();
        if !quoted_by_any && !last.contains_key(code) {
            // No source has ever agreed on it, and none quotes it now: not served, and
            // nothing to explain.
            continue;
        }
        outcomes.push(super::provenance::row(*code, agreement, now));
        match &agreement.rate {
            Some(rate) => {
                quotes.insert(*code, rate.clone());
            }
            None => {
                below_quorum.push(*code);
                if let Some(agreed) = last.get(code)
                    && now - agreed.last_seen_at <= max_age
                {
                    quotes.insert(*code, agreed.rate.clone());
                }
            }
        }
    }
    if !below_quorum.is_empty() {
        tracing::warn!(currencies = ?below_quorum, quorum = rules.quorum, "currencies without a quorum of agreeing rates sources");
    }
    let dates_only = snapshots
        .iter()
        .any(|(_, s)| s.provider.publishes_dates_only());
    let snapshot = crate::rates::provider::Snapshot {
        provider: snapshots[0].1.provider,
        base: pivot,
        as_of,
        missing: symbols
            .iter()
            .filter(|c| !quotes.contains_key(c))
            .copied()
            .collect(),
        quotes,
        ignored_codes: 0,
    };
    let feed = Feed {
        name: CONSENSUS_FEED,
        dates_only,
        provenance: Some(&outcomes),
    };
    store_feed(state, feed, snapshot, currencies, symbols, failures).await
}

/// One warning per source that was excluded for most of the currencies it quoted: a source
/// that is wrong across the board (inverted, scaled, stale) is named once, not per currency.
fn warn_of_outliers(
    snapshots: &[(String, crate::rates::provider::Snapshot)],
    agreed: &BTreeMap<CurrencyCode, super::consensus::Agreement>,
) {
    for (name, snapshot) in snapshots {
        let quoted = snapshot.quotes.len();
        let excluded = agreed
            .values()
            .filter(|a| a.excluded.iter().any(|e| &e.source == name))
            .count();
        if quoted > 0 && excluded * 2 > quoted {
            tracing::warn!(
                source = name.as_str(),
                excluded,
                quoted,
                "rates source disagrees with the others for most currencies: excluded"
            );
        }
    }
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
    let feed = Feed {
        name: snapshot.provider.as_str(),
        dates_only: snapshot.provider.publishes_dates_only(),
        provenance: None,
    };
    store_feed(state, feed, snapshot, currencies, symbols, failures).await
}

/// Which feed a snapshot is stored under: a provider's own, or the consensus of the sources
/// (with each currency's provenance, stored in the same transaction).
pub(crate) struct Feed<'a> {
    /// `rate_snapshots.provider`.
    pub name: &'a str,
    /// Whether its publications carry a date only (see the same-day rule in `store_feed`).
    pub dates_only: bool,
    /// The consensus outcome of every currency, recorded change-only.
    pub provenance: Option<&'a [store::ConsensusRow]>,
}

pub(crate) async fn store_feed(
    state: &Rates,
    feed: Feed<'_>,
    snapshot: crate::rates::provider::Snapshot,
    currencies: &HashMap<CurrencyCode, Currency>,
    symbols: &[CurrencyCode],
    failures: Vec<(String, String)>,
) -> anyhow::Result<FetchReport> {
    let now = state.clock.now();
    let provider = feed.name;
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
    let newest = store::newest_as_of(&mut tx, provider, snapshot.base).await?;
    // A day's publication polled before its publication hour carries the time of the poll
    // (`as_of` is clamped to now), so each poll would look like a new publication. When the
    // rates are the ones already stored for that day, it is that publication seen again: keep
    // the time it was first seen, so the poll only touches `last_seen_at`.
    let mut snapshot = snapshot;
    if let Some(stored) = newest
        && feed.dates_only
        && stored.date_naive() == snapshot.as_of.date_naive()
        && stored < snapshot.as_of
    {
        let codes: Vec<CurrencyCode> = known.keys().copied().collect();
        let at_stored = store::quotes_at(&mut tx, provider, snapshot.base, &codes, stored).await?;
        let unchanged = known
            .iter()
            .all(|(code, rate)| at_stored.get(code).is_some_and(|q| &q.rate == rate));
        if unchanged {
            snapshot.as_of = stored;
            report.as_of = stored;
        }
    }
    if let Some(stored) = newest
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
    if let Some(outcomes) = feed.provenance {
        super::provenance::record(&mut tx, snapshot.base, now, outcomes).await?;
    }
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

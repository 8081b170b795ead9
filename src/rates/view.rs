//! The rates in force at one instant, as stored: one snapshot and, for each currency it quotes,
//! the stored row in force. Cross rates between any two of its currencies are derived here
//! through the snapshot's base with [`Rate::cross`]; nothing is rounded beyond what `money` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::store::{self, SnapshotRow, StoredQuote};
use crate::currencies::CurrencyCode;
use crate::money::Rate;

/// A snapshot and the quote rows in force at its `as_of`.
#[derive(Debug, Clone)]
pub struct RatesView {
    /// The snapshot (provider, base, times).
    pub snapshot: SnapshotRow,
    /// Units of each currency per one `snapshot.base`.
    pub quotes: BTreeMap<CurrencyCode, StoredQuote>,
    /// For the consensus feed: each currency's outcome of the newest fetch at the instant read
    /// (sources used and excluded). Empty for a single provider's feed.
    pub provenance: BTreeMap<CurrencyCode, store::ConsensusRow>,
    /// Cross rates derived so far (see [`CrossRates`]).
    crosses: CrossRates,
}

/// The cross rates of a view computed so far, by (from, to). A view never changes once
/// loaded (the latest one is replaced whole when rates change), so a cross rate is computed
/// once per view and pair rather than per request: its division to 20 significant digits was
/// the largest single cost of a `GET /convert`. The same function of the same two rates, so
/// the same rate. Bounded: past [`CrossRates::MAX`] pairs, a rate is computed and not kept.
#[derive(Debug, Default)]
struct CrossRates(RwLock<HashMap<(CurrencyCode, CurrencyCode), Rate>>);

impl CrossRates {
    /// More than a busy deployment's pairs in use, far fewer than every pair of 170 currencies.
    const MAX: usize = 4096;

    fn get_or_compute(&self, from: CurrencyCode, to: CurrencyCode, a: &Rate, b: &Rate) -> Rate {
        if let Some(rate) = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(from, to))
        {
            return rate.clone();
        }
        let rate = Rate::cross(a, b);
        let mut crosses = self.0.write().unwrap_or_else(|p| p.into_inner());
        if crosses.len() < Self::MAX {
            crosses.insert((from, to), rate.clone());
        }
        rate
    }
}

/// A copy starts without the copied view's cross rates (the copy's quotes may be changed).
impl Clone for CrossRates {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// One side of a cross rate: the pivot's rate to a currency and the row it comes from.
#[derive(Debug, Clone)]
pub struct PivotRate {
    /// Units of the currency per one pivot.
    pub rate: Rate,
    /// The `rate_quotes` row; `None` when the currency is the pivot itself.
    pub quote_id: Option<i64>,
}

impl RatesView {
    /// Reads the quotes in force at the snapshot's `as_of` for the currencies it lists, and
    /// for the consensus feed each currency's provenance as last seen (at the latest, `at`).
    pub async fn load(
        db: &PgPool,
        snapshot: SnapshotRow,
        at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<RatesView> {
        let mut conn = db.acquire().await?;
        let provenance = if snapshot.provider == store::CONSENSUS_FEED {
            let seen = at.map_or(snapshot.last_seen_at, |t| t.min(snapshot.last_seen_at));
            store::consensus_at(&mut conn, snapshot.base, &snapshot.currencies, seen).await?
        } else {
            BTreeMap::new()
        };
        let quotes = store::quotes_at(
            &mut conn,
            &snapshot.provider,
            snapshot.base,
            &snapshot.currencies,
            snapshot.as_of,
        )
        .await?;
        Ok(RatesView {
            snapshot,
            quotes,
            provenance,
            crosses: CrossRates::default(),
        })
    }

    /// The pivot's rate to `code`, if quoted (the pivot itself is 1).
    pub fn pivot_rate(&self, code: CurrencyCode) -> Option<PivotRate> {
        if code == self.snapshot.base {
            return Some(PivotRate {
                rate: Rate::new(1.into()).ok()?,
                quote_id: None,
            });
        }
        self.quotes.get(&code).map(|q| PivotRate {
            rate: q.rate.clone(),
            quote_id: Some(q.id),
        })
    }

    /// Whether `code` is served from a consensus its sources no longer reach (below the
    /// quorum at the newest fetch, kept until `rates.max_age_secs` after the last agreement).
    pub fn degraded(&self, code: CurrencyCode) -> bool {
        self.provenance.get(&code).is_some_and(|p| p.rate.is_none())
    }

    /// The sources whose values made the rate of `code` (empty for the pivot or a single
    /// provider's feed). A degraded currency is served from its last agreement: the sources
    /// of that one, not the minority that agrees now.
    pub fn sources_of(&self, code: CurrencyCode) -> &[String] {
        self.provenance
            .get(&code)
            .and_then(|p| p.last_agreed.as_ref())
            .map_or(&[][..], |a| a.used.as_slice())
    }

    /// Whether `code` has a rate in this view.
    pub fn quotes_currency(&self, code: CurrencyCode) -> bool {
        code == self.snapshot.base || self.quotes.contains_key(&code)
    }

    /// Units of `to` per one `from`, with the two pivot sides used.
    pub fn cross(
        &self,
        from: CurrencyCode,
        to: CurrencyCode,
    ) -> Option<(Rate, PivotRate, PivotRate)> {
        let a = self.pivot_rate(from)?;
        let b = self.pivot_rate(to)?;
        let rate = self.crosses.get_or_compute(from, to, &a.rate, &b.rate);
        Some((rate, a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_cross_rate_is_the_computed_one_for_that_direction() {
        let crosses = CrossRates::default();
        let usd = CurrencyCode::parse("USD").unwrap();
        let jpy = CurrencyCode::parse("JPY").unwrap();
        let per_usd = Rate::parse("1.1").unwrap();
        let per_jpy = Rate::parse("161.37").unwrap();
        for _ in 0..2 {
            assert_eq!(
                crosses.get_or_compute(usd, jpy, &per_usd, &per_jpy),
                Rate::cross(&per_usd, &per_jpy)
            );
            assert_eq!(
                crosses.get_or_compute(jpy, usd, &per_jpy, &per_usd),
                Rate::cross(&per_jpy, &per_usd)
            );
        }
    }
}

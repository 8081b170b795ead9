//! The rates in force at one instant, as stored: one snapshot and, for each currency it quotes,
//! the stored row in force. Cross rates between any two of its currencies are derived here
//! through the snapshot's base with [`Rate::cross`]; nothing is rounded beyond what `money` does.

use std::collections::BTreeMap;

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
    /// Reads the quotes in force at the snapshot's `as_of` for the currencies it lists.
    pub async fn load(db: &PgPool, snapshot: SnapshotRow) -> anyhow::Result<RatesView> {
        let mut conn = db.acquire().await?;
        let quotes = store::quotes_at(
            &mut conn,
            &snapshot.provider,
            snapshot.base,
            &snapshot.currencies,
            snapshot.as_of,
        )
        .await?;
        Ok(RatesView { snapshot, quotes })
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
        Some((Rate::cross(&a.rate, &b.rate), a, b))
    }
}

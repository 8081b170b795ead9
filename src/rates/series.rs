//! Time series of cross rates with open/high/low/close per interval, derived from the stored
//! changes of the pivot's quotes (nothing is pre-aggregated: the change-only storage keeps a
//! range small). Ranges are bounded; a range with more stored changes than [`MAX_CHANGES`] is
//! answered in pages (`next_from`).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Rates;
use super::service::RatesError;
use super::store;
use crate::currencies::CurrencyCode;
use crate::money::Rate;

/// Stored changes read per page.
pub const MAX_CHANGES: usize = 20_000;

/// Width of a candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// One point per stored change.
    Raw,
    /// One candle per UTC hour.
    Hour,
    /// One candle per UTC day.
    Day,
}

impl Interval {
    /// Longest range allowed for this interval.
    pub fn max_range(self) -> TimeDelta {
        match self {
            Interval::Day => TimeDelta::days(366),
            Interval::Hour | Interval::Raw => TimeDelta::days(31),
        }
    }

    fn bucket(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let width = match self {
            Interval::Raw => return t,
            Interval::Hour => TimeDelta::hours(1),
            Interval::Day => TimeDelta::days(1),
        };
        t.duration_trunc(width).unwrap_or(t)
    }
}

impl FromStr for Interval {
    type Err = RatesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Interval::Raw),
            "hour" => Ok(Interval::Hour),
            "day" => Ok(Interval::Day),
            _ => Err(RatesError::Invalid {
                field: "interval",
                message: "must be raw, hour or day".into(),
            }),
        }
    }
}

/// One interval of one currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Candle {
    /// Start of the interval (the change time for `raw`).
    pub start: DateTime<Utc>,
    /// First rate in the interval.
    #[schema(value_type = String)]
    pub open: Rate,
    /// Highest rate.
    #[schema(value_type = String)]
    pub high: Rate,
    /// Lowest rate.
    #[schema(value_type = String)]
    pub low: Rate,
    /// Last rate.
    #[schema(value_type = String)]
    pub close: Rate,
}

/// The answer of `GET /rates/series`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Series {
    /// Base of every rate.
    pub base: CurrencyCode,
    /// Start of the range answered.
    pub from: DateTime<Utc>,
    /// End of the range asked for.
    pub to: DateTime<Utc>,
    /// Candle width.
    pub interval: Interval,
    /// Provider whose rates are used.
    pub provider: String,
    /// Candles per currency, oldest first: the interval of `from` (the rate then in force), then
    /// each interval in which the rate changed; intervals without a change are left out (the
    /// previous close carries over).
    #[schema(value_type = BTreeMap<String, Vec<Candle>>)]
    pub rates: BTreeMap<CurrencyCode, Vec<Candle>>,
    /// When the range had too many changes for one answer: ask again with `from` set to this.
    pub next_from: Option<DateTime<Utc>>,
}

/// Candles of `symbols` against `base` between `from` and `to`.
pub async fn series(
    state: &Rates,
    base: CurrencyCode,
    symbols: &[CurrencyCode],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
) -> Result<Series, RatesError> {
    if from > to {
        return Err(RatesError::Invalid {
            field: "from",
            message: "must not be after `to`".into(),
        });
    }
    if to - from > interval.max_range() {
        return Err(RatesError::Invalid {
            field: "to",
            message: format!(
                "the range may span at most {} days for interval {:?}",
                interval.max_range().num_days(),
                interval
            ),
        });
    }
    let entry = state.runtime.cache.get(state).await?;
    let named = symbols
        .iter()
        .map(|code| (*code, "symbols"))
        .chain([(base, "base")]);
    for (code, field) in named {
        if !entry.currencies.contains_key(&code) {
            return Err(RatesError::CurrencyNotSupported { code, field });
        }
    }
    // A series may be a moment behind: it reads the replica while that is current enough.
    let db = state.reads.pool().await;
    let snapshot = store::snapshot_at(db, Some(to)).await?.ok_or_else(|| {
        RatesError::NoRates(format!(
            "no rates are stored at or before {}",
            to.to_rfc3339()
        ))
    })?;
    let pivot = snapshot.base;
    let provider = snapshot.provider;
    let mut needed: Vec<CurrencyCode> = symbols
        .iter()
        .chain([&base])
        .filter(|c| **c != pivot)
        .copied()
        .collect();
    needed.sort();
    needed.dedup();
    let mut current: BTreeMap<CurrencyCode, Rate> = {
        let mut conn = db.acquire().await.map_err(anyhow::Error::from)?;
        store::quotes_at(&mut conn, &provider, pivot, &needed, from)
            .await?
            .into_iter()
            .map(|(c, q)| (c, q.rate))
            .collect()
    };
    let one = Rate::new(1.into())?;
    current.insert(pivot, one);
    let mut changes = store::changes_between(
        db,
        &provider,
        pivot,
        &needed,
        from,
        to,
        i64::try_from(MAX_CHANGES + 1).unwrap_or(i64::MAX),
    )
    .await?;
    let mut next_from = None;
    if changes.len() > MAX_CHANGES {
        // Stop before the first instant that is not complete in this page.
        let cut = changes[MAX_CHANGES].as_of;
        changes.retain(|c| c.as_of < cut);
        next_from = Some(cut);
    }
    let mut rates: BTreeMap<CurrencyCode, Vec<Candle>> =
        symbols.iter().map(|c| (*c, Vec::new())).collect();
    // `changed`: the currencies that changed at `t` (`None` for the opening point, which records
    // every symbol). A symbol gets a point only when its cross rate may have moved.
    let mut record = |t: DateTime<Utc>,
                      current: &BTreeMap<CurrencyCode, Rate>,
                      changed: Option<&[CurrencyCode]>| {
        let Some(base_rate) = current.get(&base) else {
            return;
        };
        for symbol in symbols {
            if changed.is_some_and(|c| !c.contains(symbol) && !c.contains(&base)) {
                continue;
            }
            let Some(side) = current.get(symbol) else {
                continue;
            };
            let rate = Rate::cross(base_rate, side);
            let start = interval.bucket(t);
            let candles = rates.entry(*symbol).or_default();
            match candles.last_mut() {
                Some(c) if c.start == start => {
                    if rate > c.high {
                        c.high = rate.clone();
                    }
                    if rate < c.low {
                        c.low = rate.clone();
                    }
                    c.close = rate;
                }
                _ => candles.push(Candle {
                    start,
                    open: rate.clone(),
                    high: rate.clone(),
                    low: rate.clone(),
                    close: rate,
                }),
            }
        }
    };
    record(from, &current, None);
    let mut i = 0;
    let mut changed = Vec::new();
    while i < changes.len() {
        let t = changes[i].as_of;
        changed.clear();
        while i < changes.len() && changes[i].as_of == t {
            current.insert(changes[i].quote, changes[i].rate.clone());
            changed.push(changes[i].quote);
            i += 1;
        }
        record(t, &current, Some(&changed));
    }
    Ok(Series {
        base,
        from,
        to,
        interval,
        provider,
        rates,
        next_from,
    })
}

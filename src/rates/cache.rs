//! The in-process copy of the latest rates and of the currency list, so that `latest`, `convert`
//! and [`super::service::quote`] need no database query on a warm cache.
//!
//! Freshness: a store in this process drops the copy at once ([`LatestRatesCache::invalidate`]);
//! other processes learn of it through the Redis counter `rates:version`, which every store
//! increments and which each process reads at most once per [`VERSION_CHECK_INTERVAL`]. The copy
//! is also reloaded after `rates.cache_ttl_secs` whatever the counter says, so a currency
//! disabled by an admin (which does not touch the counter) is refused within that time. Redis
//! being away only delays that learning: the copy keeps being served until its TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::Rates;
use super::store;
use super::view::RatesView;
use crate::currencies::{Currency, CurrencyCode};

/// How often, at most, a process asks Redis whether another process stored new rates.
pub const VERSION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Name of the Redis counter incremented by every store (under the deployment's prefix).
pub const VERSION_KEY: &str = "rates:version";

/// What the cache holds: the latest rates (if any were stored) and every known currency.
#[derive(Debug)]
pub struct LatestEntry {
    /// The newest stored snapshot with its quotes; `None` before the first fetch.
    pub view: Option<Arc<RatesView>>,
    /// Every currency of the `currencies` table, retired ones included.
    pub currencies: HashMap<CurrencyCode, Currency>,
    /// Value of the Redis counter the entry was loaded at (0 when Redis was unavailable).
    pub version: i64,
    /// `GET /rates/latest` answers already serialised from this entry, by query and staleness
    /// (see [`super::service::latest_rendered`]); they live and die with the entry, as the
    /// view's cross rates do, so new rates never meet old answers.
    pub rendered: std::sync::Mutex<HashMap<LatestQuery, Arc<RenderedTable>>>,
}

/// What makes two `GET /rates/latest` answers of one cache entry the same: the base, the
/// symbols as asked, whether sources are expanded, and whether the rates are stale now.
pub type LatestQuery = (CurrencyCode, Option<Vec<CurrencyCode>>, bool, bool);

/// A latest-rates answer serialised once: its JSON and its strong ETag (a SHA-256 prefix of it).
#[derive(Debug)]
pub struct RenderedTable {
    /// The `RatesTable` as JSON.
    pub body: actix_web::web::Bytes,
    /// Its strong ETag, quoted.
    pub etag: String,
}

struct Slot {
    entry: Arc<LatestEntry>,
    loaded_at: Instant,
    checked_at: Instant,
}

/// The cache itself; one per process, shared by every worker thread.
#[derive(Default)]
pub struct LatestRatesCache {
    slot: RwLock<Option<Slot>>,
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LatestRatesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestRatesCache").finish_non_exhaustive()
    }
}

impl LatestRatesCache {
    fn fresh(&self, ttl: Duration) -> Option<Arc<LatestEntry>> {
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|s| {
                s.checked_at.elapsed() < VERSION_CHECK_INTERVAL && s.loaded_at.elapsed() < ttl
            })
            .map(|s| s.entry.clone())
    }

    /// Drops the copy; the next read reloads it.
    pub fn invalidate(&self) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current entry, reloaded from the database when it is missing, too old, or another
    /// process stored newer rates.
    pub async fn get(&self, state: &Rates) -> anyhow::Result<Arc<LatestEntry>> {
        let ttl = Duration::from_secs(state.settings.cache_ttl_secs.max(1));
        if let Some(entry) = self.fresh(ttl) {
            return Ok(entry);
        }
        // One reload at a time; the others wait and then take its result.
        let _reloading = self.reload.lock().await;
        if let Some(entry) = self.fresh(ttl) {
            return Ok(entry);
        }
        let remote = match read_version(state).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the rates version from Redis; serving the cached rates until their TTL");
                None
            }
        };
        {
            let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = slot.as_mut()
                && s.loaded_at.elapsed() < ttl
                && remote.is_none_or(|v| v == s.entry.version)
            {
                s.checked_at = Instant::now();
                return Ok(s.entry.clone());
            }
        }
        let entry = Arc::new(load(state, remote.unwrap_or(0)).await?);
        let now = Instant::now();
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Some(Slot {
            entry: entry.clone(),
            loaded_at: now,
            checked_at: now,
        });
        Ok(entry)
    }
}

async fn load(state: &Rates, version: i64) -> anyhow::Result<LatestEntry> {
    let currencies = crate::currencies::service::list(&state.db, true)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .into_iter()
        .map(|c| (c.code, c))
        .collect();
    let view = match store::snapshot_at(&state.db, None).await? {
        Some(snapshot) => Some(Arc::new(RatesView::load(&state.db, snapshot, None).await?)),
        None => None,
    };
    Ok(LatestEntry {
        view,
        currencies,
        version,
        rendered: Default::default(),
    })
}

async fn read_version(state: &Rates) -> anyhow::Result<i64> {
    let value: Option<i64> = state
        .redis
        .run(redis::cmd("GET").arg(state.redis.key(VERSION_KEY)))
        .await?;
    Ok(value.unwrap_or(0))
}

/// Tells every process that new rates are stored: drops this process's copy and increments the
/// Redis counter. A Redis failure is logged; other processes then catch up at their TTL.
pub async fn announce_new_rates(state: &Rates) {
    state.runtime.cache.invalidate();
    let bumped: anyhow::Result<i64> = state
        .redis
        .run(redis::cmd("INCR").arg(state.redis.key(VERSION_KEY)))
        .await;
    if let Err(e) = bumped {
        tracing::warn!(error = %format!("{e:#}"), "cannot announce new rates through Redis; other instances will see them after rates.cache_ttl_secs");
    }
}

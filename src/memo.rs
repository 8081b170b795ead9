//! A per-process memo of data that changes a few times a day (the currency list, users'
//! profiles, partners' markup schedules), so that reading it costs no database round trip.
//!
//! Each memo has a *scope*, and each scope a change counter in Redis (`memo:<scope>:version`,
//! under the deployment's prefix). Whoever changes the data behind a scope calls
//! [`Memo::changed`] after its commit: this process drops its entries at once, and the counter
//! is incremented. Every process reads the counter at most once per [`CHECK_INTERVAL`] (one
//! Redis `GET` per second and scope, not per request) and drops all its entries of the scope
//! when the counter moved, so a change made on one instance is seen on every other within
//! that second.
//!
//! What if a change is not heard (conservative on purpose):
//! - Redis does not answer the check (down, timing out): the entries are dropped and the check
//!   is repeated a second later, so while Redis is away every entry lives at most one
//!   [`CHECK_INTERVAL`] (a short TTL fallback), read from PostgreSQL as before.
//! - Redis lost the counter (flushed, restarted): it reads as another value than the one
//!   remembered, which counts as a change.
//! - The writer could not increment the counter (Redis away for it alone): other processes
//!   keep their entries until [`MAX_AGE`] at most. A change written to PostgreSQL by hand
//!   (SQL, not through the service) is seen within [`MAX_AGE`] too.
//!
//! A load that started before a change and ends after it is not kept (a generation counter),
//! so a process never memoises what its own change replaced.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::redis_client::Redis;

/// How often, at most, a process asks Redis whether a scope changed elsewhere: the bound on
/// how long another instance serves what a change replaced.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The longest an entry is kept whatever the counter says (the writer could not reach Redis,
/// or the data was changed by hand in PostgreSQL).
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Entries kept per scope; past it, expired ones are swept and, if still full, the new value
/// is answered without being kept (the memo never grows without bound).
const MAX_ENTRIES: usize = 50_000;

struct State<K, V> {
    entries: HashMap<K, (V, Instant)>,
    /// The scope's counter as last read; `None` before the first read or after a failed one.
    version: Option<i64>,
    /// When the counter was last read (or its read failed).
    checked_at: Option<Instant>,
    /// Incremented whenever the entries are dropped: a load that began in an earlier
    /// generation is not kept.
    generation: u64,
}

/// The memo of one scope, shared by every worker thread of a process.
pub struct Memo<K, V> {
    scope: &'static str,
    state: RwLock<State<K, V>>,
    /// One counter read at a time; the others wait for its answer rather than serve entries
    /// the read may be about to drop.
    checking: tokio::sync::Mutex<()>,
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// An empty memo of `scope` (the name of its Redis counter).
    pub fn new(scope: &'static str) -> Self {
        Self {
            scope,
            state: RwLock::new(State {
                entries: HashMap::new(),
                version: None,
                checked_at: None,
                generation: 0,
            }),
            checking: tokio::sync::Mutex::new(()),
        }
    }

    fn counter(&self, redis: &Redis) -> String {
        redis.key(&format!("memo:{}:version", self.scope))
    }

    fn checked_recently(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .checked_at
            .is_some_and(|at| at.elapsed() < CHECK_INTERVAL)
    }

    fn drop_entries(state: &mut State<K, V>) {
        state.entries.clear();
        state.generation += 1;
    }

    /// Reads the scope's counter when the last read is older than [`CHECK_INTERVAL`], and
    /// drops every entry when it moved or cannot be read.
    async fn revalidate(&self, redis: &Redis) {
        if self.checked_recently() {
            return;
        }
        let _checking = self.checking.lock().await;
        if self.checked_recently() {
            return;
        }
        let read: anyhow::Result<Option<i64>> =
            redis.run(redis::cmd("GET").arg(self.counter(redis))).await;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match read {
            Ok(version) => {
                let version = version.unwrap_or(0);
                if state.version != Some(version) {
                    Self::drop_entries(&mut state);
                    state.version = Some(version);
                }
            }
            Err(e) => {
                if state.version.is_some() {
                    tracing::warn!(scope = self.scope, error = %format!("{e:#}"),
                        "cannot read a memo's change counter from Redis; its entries live one second until Redis answers");
                }
                Self::drop_entries(&mut state);
                state.version = None;
            }
        }
        state.checked_at = Some(Instant::now());
    }

    /// The value memoised for `key`, or what `load` gives (kept for the next caller unless the
    /// scope changed meanwhile).
    pub async fn get_or_load<E, F, Fut>(&self, redis: &Redis, key: K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        // The common case in one read lock and one clock read: checked within the last second
        // and the entry is there.
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if state
                .checked_at
                .is_some_and(|at| now.saturating_duration_since(at) < CHECK_INTERVAL)
                && let Some((value, at)) = state.entries.get(&key)
                && now.saturating_duration_since(*at) < MAX_AGE
            {
                return Ok(value.clone());
            }
        }
        self.revalidate(redis).await;
        let generation = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if let Some((value, at)) = state.entries.get(&key)
                && at.elapsed() < MAX_AGE
            {
                return Ok(value.clone());
            }
            state.generation
        };
        let value = load().await?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.generation == generation {
            if state.entries.len() >= MAX_ENTRIES {
                state.entries.retain(|_, (_, at)| at.elapsed() < MAX_AGE);
            }
            if state.entries.len() < MAX_ENTRIES {
                state.entries.insert(key, (value.clone(), Instant::now()));
            }
        }
        Ok(value)
    }

    /// Forgets every entry of this process now, without telling anyone.
    pub fn forget_all(&self) {
        Self::drop_entries(&mut self.state.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// The data behind this scope changed (call it after the change committed): this process
    /// forgets its entries at once, and every other one within [`CHECK_INTERVAL`]. A Redis
    /// failure is logged; the others then catch up within [`MAX_AGE`].
    pub async fn changed(&self, redis: &Redis) {
        self.forget_all();
        let bumped: anyhow::Result<i64> =
            redis.run(redis::cmd("INCR").arg(self.counter(redis))).await;
        if let Err(e) = bumped {
            tracing::warn!(scope = self.scope, error = %format!("{e:#}"),
                "cannot announce a change through Redis; other instances see it within the memo's maximum age");
        }
    }
}

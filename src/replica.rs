//! Reads that may be a moment behind: history lists, CSV exports, summaries, reports, rate
//! series and the monitor's charts go to the read replica (`database.replica_url`) while it
//! answers and is within `database.replica_max_lag_secs`; otherwise to the primary. Everything
//! that must see its own write (conversions, quotes, auth, `GET /conversions/{id}` right after
//! the `POST`) takes the primary pool directly and never comes here.
//!
//! Lag is measured on the replica, and only while WAL it received waits to be replayed
//! (`pg_last_wal_receive_lsn() <> pg_last_wal_replay_lsn()`, which covers replay paused with
//! WAL waiting): then it is the age of the last replayed transaction. An idle primary sends no
//! WAL, so a replica that has replayed everything it received is current however old its last
//! transaction is. A replica that does not stream from its primary at all (the WAL receiver is
//! gone) cannot say how far behind it is, and counts as lagging.
//!
//! The state is checked at most once per [`CHECK_EVERY`] by whichever read comes first after
//! that (one check at a time; reads meanwhile use the last state), so a read costs no extra
//! round trip. A change of state is logged once (the start and the end of each episode), and
//! every read sent to the primary because of it is counted for `/metrics`. A read that fails
//! on the replica because it is unreachable is retried once on the primary, and marks the
//! replica down until the next check.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::settings::DatabaseSettings;

/// How long a checked replica state is trusted before the next read checks again.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one check may take before the replica counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1000);

/// The read replica as the last check saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// No replica configured: every read goes to the primary, and that is no fallback.
    None,
    /// Answering and within the lag bound: lagging-tolerant reads go there.
    Up,
    /// Answering, but further behind than the bound (or not streaming): reads go to the primary.
    Lagging,
    /// Not answering (or not a standby): reads go to the primary.
    Down,
}

impl ReplicaState {
    /// As `/health/ready` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::None => "none",
            ReplicaState::Up => "up",
            ReplicaState::Lagging => "lagging",
            ReplicaState::Down => "down",
        }
    }
}

/// The pools reads choose between. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ReadPool {
    /// The money path's pool, for what must see its own writes.
    primary: PgPool,
    /// Connections of their own to the primary for the reads that come here, with the read
    /// sessions' settings ([`crate::db::primary_read_pool`]): used when there is no replica or
    /// it cannot be used.
    primary_reads: PgPool,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    pool: PgPool,
    max_lag: Duration,
    /// The last state and when it was checked (`None`: never).
    observed: Mutex<(ReplicaState, Option<Instant>)>,
    /// Held by the one read that is checking, so that the others do not check too.
    checking: tokio::sync::Mutex<()>,
    /// Reads sent to the primary because the replica was lagging or down.
    fallbacks: AtomicU64,
}

impl ReadPool {
    /// The read pools of `settings`: the primary's read pool
    /// (`database.read_max_connections`), and the replica when `database.replica_url` is set (a
    /// lazy pool of the same size and acquire timeout as the primary's).
    pub fn new(primary: PgPool, settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let replica = crate::db::replica_pool(settings)?.map(|pool| {
            Arc::new(Replica {
                pool,
                max_lag: Duration::from_secs(settings.replica_max_lag_secs),
                observed: Mutex::new((ReplicaState::Down, None)),
                checking: tokio::sync::Mutex::new(()),
                fallbacks: AtomicU64::new(0),
            })
        });
        Ok(Self {
            primary,
            primary_reads: crate::db::primary_read_pool(settings)?,
            replica,
        })
    }

    /// The primary, for what must see its own writes.
    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// The pool a read that may be a moment behind should use now: the replica when it is up
    /// and within the lag bound, else the primary's read pool (counted as a fallback).
    pub async fn pool(&self) -> &PgPool {
        self.choose().await.0
    }

    /// [`Self::pool`], and the replica when that is the one chosen.
    async fn choose(&self) -> (&PgPool, Option<&Replica>) {
        let Some(replica) = &self.replica else {
            return (&self.primary_reads, None);
        };
        if replica.state().await == ReplicaState::Up {
            (&replica.pool, Some(replica))
        } else {
            replica.fallbacks.fetch_add(1, Ordering::Relaxed);
            (&self.primary_reads, None)
        }
    }

    /// Runs `read` on [`Self::pool`]; when it fails there because the replica is unreachable,
    /// marks the replica down and runs it once more on the primary.
    pub async fn read<T, F, Fut>(&self, read: F) -> Result<T, sqlx::Error>
    where
        F: Fn(PgPool) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let (pool, on_replica) = self.choose().await;
        match (read(pool.clone()).await, on_replica) {
            (Err(e), Some(replica)) if crate::db::is_unavailable(&e) => {
                replica.record(ReplicaState::Down, Some(&e.to_string()));
                replica.fallbacks.fetch_add(1, Ordering::Relaxed);
                read(self.primary_reads.clone()).await
            }
            (result, _) => result,
        }
    }

    /// The replica's state, checked now if the last check is older than [`CHECK_EVERY`].
    pub async fn state(&self) -> ReplicaState {
        match &self.replica {
            None => ReplicaState::None,
            Some(replica) => replica.state().await,
        }
    }

    /// Reads sent to the primary because the replica was lagging or down, since start.
    pub fn fallbacks(&self) -> u64 {
        self.replica
            .as_ref()
            .map_or(0, |r| r.fallbacks.load(Ordering::Relaxed))
    }
}

impl Replica {
    async fn state(&self) -> ReplicaState {
        let last = self.last();
        if last.1.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return last.0;
        }
        // One check at a time; the reads that arrive meanwhile go by the last state (down
        // before the first check, so that nothing reads an unchecked replica).
        let Ok(_checking) = self.checking.try_lock() else {
            return last.0;
        };
        let last = self.last();
        if last.1.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return last.0;
        }
        let (state, why) = match tokio::time::timeout(CHECK_TIMEOUT, self.check()).await {
            Err(_) => (
                ReplicaState::Down,
                Some("the lag check timed out".to_owned()),
            ),
            Ok(Err(e)) => (ReplicaState::Down, Some(format!("{e}"))),
            Ok(Ok(Lag::NotStandby)) => (
                ReplicaState::Down,
                Some("not a standby (promoted, or the primary itself)".to_owned()),
            ),
            Ok(Ok(Lag::NotStreaming)) => (
                ReplicaState::Lagging,
                Some("not streaming from its primary".to_owned()),
            ),
            Ok(Ok(Lag::Behind(lag))) if lag > self.max_lag => (
                ReplicaState::Lagging,
                Some(format!("{} ms behind", lag.as_millis())),
            ),
            Ok(Ok(Lag::Behind(_))) => (ReplicaState::Up, None),
        };
        self.record(state, why.as_deref());
        state
    }

    fn last(&self) -> (ReplicaState, Option<Instant>) {
        *self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a checked state; logs when it differs from the previous one (once per episode).
    fn record(&self, state: ReplicaState, why: Option<&str>) {
        let previous = {
            let mut observed = self
                .observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let previous = observed.0;
            *observed = (state, Some(Instant::now()));
            previous
        };
        if previous == state {
            return;
        }
        match state {
            ReplicaState::Up => tracing::info!(
                replica = state.as_str(),
                "read replica within its lag bound: lag-tolerant reads go to it again"
            ),
            _ => tracing::warn!(
                replica = state.as_str(),
                reason = why.unwrap_or_default(),
                max_lag_secs = self.max_lag.as_secs(),
                "read replica unusable: lag-tolerant reads go to the primary"
            ),
        }
    }

    async fn check(&self) -> Result<Lag, sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT pg_is_in_recovery() AS "standby!",
                      EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
                          AS "streaming!",
                      pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn()
                          AS "waiting!",
                      (EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint
                          AS replay_age_ms"#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Lag::from_observation(
            row.standby,
            row.streaming,
            row.waiting,
            row.replay_age_ms,
        ))
    }
}

/// How far behind the replica is, as one check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lag {
    /// Not in recovery: not a replica of anything.
    NotStandby,
    /// A standby without a streaming WAL receiver: how far behind is unknown.
    NotStreaming,
    /// Behind by this much (zero when nothing received waits to be replayed).
    Behind(Duration),
}

impl Lag {
    fn from_observation(
        standby: bool,
        streaming: bool,
        waiting: bool,
        replay_age_ms: Option<i64>,
    ) -> Self {
        if !standby {
            return Lag::NotStandby;
        }
        if !streaming {
            return Lag::NotStreaming;
        }
        if !waiting {
            return Lag::Behind(Duration::ZERO);
        }
        // WAL waits but nothing was replayed since the replica started: as far behind as can be.
        Lag::Behind(
            replay_age_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
                .unwrap_or(Duration::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_primary_is_no_lag_however_old_the_last_transaction() {
        assert_eq!(
            Lag::from_observation(true, true, false, Some(86_400_000)),
            Lag::Behind(Duration::ZERO)
        );
    }

    #[test]
    fn waiting_wal_counts_the_age_of_the_last_replayed_transaction() {
        assert_eq!(
            Lag::from_observation(true, true, true, Some(2_500)),
            Lag::Behind(Duration::from_millis(2_500))
        );
        assert_eq!(
            Lag::from_observation(true, true, true, None),
            Lag::Behind(Duration::MAX)
        );
    }

    #[test]
    fn a_server_that_is_not_a_streaming_standby_is_not_used() {
        assert_eq!(
            Lag::from_observation(false, false, false, None),
            Lag::NotStandby
        );
        assert_eq!(
            Lag::from_observation(true, false, false, Some(0)),
            Lag::NotStreaming
        );
    }
}

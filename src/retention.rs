//! Retention: one scheduled job, `prune_expired_data`, deletes what outlived its setting —
//! finished task runs (`tasks.retention_days`), webhook events with their deliveries
//! (`webhooks.retention_days`), expired quotes (`quotes.retention_days`), idempotency keys
//! (`conversions.idempotency_retention_secs` past their TTL), expired refresh tokens
//! (`auth.session_retention_days`) and the rates sources' fetch records
//! (`rates.source_fetch_retention_days`). Each capability owns the statement for its own table; this
//! module only decides the cut-offs and drives the batches.
//!
//! Every statement deletes at most `tasks.prune_batch_size` rows and commits on its own, so a
//! prune holds row locks briefly and never blocks the writes beside it for long; between two
//! full batches it rests `tasks.prune_batch_pause_ms`. Locks are not what slows the writes
//! beside a prune: its WAL is. Every commit waits for the WAL to be flushed up to its own
//! record, which includes whatever the prune wrote before it, so a prune deleting without a
//! rest put its WAL in front of every conversion's commit (`benches/retention`,
//! docs/scaling.md). Conversions are never deleted: they are the money history.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::clock::Clock;
use crate::settings::Settings;
use crate::tasks::{Job, JobContext};

/// What [`PruneExpiredData`] runs with: the pool, the clock and the retention of each kind.
#[derive(Clone)]
pub struct Retention {
    /// PostgreSQL, where every pruned table is.
    pub db: PgPool,
    /// Now, for the cut-offs.
    pub clock: Clock,
    /// `tasks.prune_batch_size`.
    pub batch: i64,
    /// `tasks.prune_batch_pause_ms`: the rest between two full batches.
    pub pause: Duration,
    /// `tasks.retention_days`.
    pub task_runs: TimeDelta,
    /// `webhooks.retention_days`.
    pub webhook_events: TimeDelta,
    /// `quotes.retention_days`.
    pub quotes: TimeDelta,
    /// `conversions.idempotency_retention_secs`.
    pub idempotency_keys: TimeDelta,
    /// `auth.session_retention_days`.
    pub sessions: TimeDelta,
    /// `rates.source_fetch_retention_days`.
    pub source_fetches: TimeDelta,
}

impl Retention {
    /// The retention of a process, from the settings of each kind.
    pub fn new(db: PgPool, clock: Clock, settings: &Settings) -> Self {
        let days = |d: u32| TimeDelta::days(i64::from(d));
        Self {
            db,
            clock,
            batch: i64::from(settings.tasks.prune_batch_size.max(1)),
            pause: Duration::from_millis(settings.tasks.prune_batch_pause_ms),
            task_runs: days(settings.tasks.retention_days),
            webhook_events: days(settings.webhooks.retention_days),
            quotes: days(settings.quotes.retention_days),
            idempotency_keys: TimeDelta::seconds(crate::settings::secs(
                settings.conversions.idempotency_retention_secs,
            )),
            sessions: days(settings.auth.session_retention_days),
            source_fetches: days(settings.rates.source_fetch_retention_days),
        }
    }
}

/// Rows deleted by one prune, per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub task_runs: u64,
    pub webhook_events: u64,
    pub quotes: u64,
    pub idempotency_keys: u64,
    pub sessions: u64,
    pub source_fetches: u64,
}

/// Deletes everything past its retention at `now`, batch by batch.
pub async fn prune(retention: &Retention) -> anyhow::Result<Pruned> {
    let now = retention.clock.now();
    let (db, n, pause) = (&retention.db, retention.batch, retention.pause);
    Ok(Pruned {
        task_runs: drain("task runs", n, pause, || {
            crate::tasks::store::delete_finished_batch(db, cut(now, retention.task_runs), n)
        })
        .await?,
        webhook_events: drain("webhook events", n, pause, || {
            crate::webhooks::store::delete_events_before(db, cut(now, retention.webhook_events), n)
        })
        .await?,
        quotes: drain("quotes", n, pause, || {
            crate::quotes::store::delete_expired_before(db, cut(now, retention.quotes), n)
        })
        .await?,
        idempotency_keys: drain("idempotency keys", n, pause, || {
            crate::idempotency::delete_expired_batch(db, cut(now, retention.idempotency_keys), n)
        })
        .await?,
        sessions: drain("refresh tokens", n, pause, || {
            crate::auth::store::delete_refresh_tokens_expired_before(
                db,
                cut(now, retention.sessions),
                n,
            )
        })
        .await?,
        source_fetches: drain("rates source fetches", n, pause, || {
            crate::rates::health::delete_fetches_before(db, cut(now, retention.source_fetches), n)
        })
        .await?,
    })
}

fn cut(now: DateTime<Utc>, keep: TimeDelta) -> DateTime<Utc> {
    now.checked_sub_signed(keep)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Runs `batch` until it deletes fewer than `limit` rows, resting `pause` after each full one;
/// returns the total.
async fn drain<F, Fut>(kind: &str, limit: i64, pause: Duration, mut batch: F) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let limit = u64::try_from(limit).unwrap_or(1);
    let mut total = 0;
    loop {
        let deleted = batch().await.with_context(|| format!("pruning {kind}"))?;
        total += deleted;
        if deleted < limit {
            return Ok(total);
        }
        // Let the commits queued behind this batch's WAL go first (module docs).
        tokio::time::sleep(pause).await;
    }
}

/// Deletes what outlived its retention (see the module docs). Idempotent: a second run finds
/// less or nothing to delete.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PruneExpiredData {}

impl Job for PruneExpiredData {
    const NAME: &'static str = "prune_expired_data";
    type Context = Retention;

    #[tracing::instrument(name = "prune_expired_data", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<Retention>) -> anyhow::Result<()> {
        let pruned = prune(&ctx.state).await?;
        tracing::info!(
            task_runs = pruned.task_runs,
            webhook_events = pruned.webhook_events,
            quotes = pruned.quotes,
            idempotency_keys = pruned.idempotency_keys,
            sessions = pruned.sessions,
            source_fetches = pruned.source_fetches,
            "pruned expired data"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// 2,500 rows in batches of 1,000: two full batches, each followed by the rest, then a
    /// short one that ends the drain.
    #[tokio::test]
    async fn a_drain_rests_after_each_full_batch() {
        let pause = Duration::from_millis(50);
        let calls = Mutex::new(Vec::new());
        let total = drain("rows", 1_000, pause, || {
            let mut calls = calls.lock().unwrap();
            let take = 2_500_u64
                .saturating_sub(1_000 * calls.len() as u64)
                .min(1_000);
            calls.push(std::time::Instant::now());
            async move { Ok(take) }
        })
        .await
        .unwrap();
        assert_eq!(total, 2_500);
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 3);
        for pair in calls.windows(2) {
            assert!(
                pair[1] - pair[0] >= pause,
                "{:?} between two batches",
                pair[1] - pair[0]
            );
        }
    }
}

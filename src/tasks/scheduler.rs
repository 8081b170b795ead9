//! The scheduler records a run for every cron tick of every scheduled task, exactly once however
//! many scheduler instances run, and the reconciler takes over runs whose lease lapsed and
//! re-enqueues runs that PostgreSQL says are pending but Redis has lost.
//!
//! Exactly once: each tick is an `INSERT ... ON CONFLICT DO NOTHING` against the unique
//! `(task_name, scheduled_for)` constraint. The decision lives in PostgreSQL rather than in a
//! Redis lock because PostgreSQL is the record: it survives a Redis restart or flush, so a tick
//! recorded while Redis is down is neither lost (the reconciler enqueues it later) nor recorded
//! twice (a lock that vanished with Redis would let a second instance in).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Tasks;
use super::queue::Queue;
use super::registry::{Schedule, TaskRegistry};
use super::store;

/// Most missed ticks one wake-up counts for its log line (it records only the latest).
const MAX_TICKS_PER_WAKE: usize = 100;

/// How long a pending run must be overdue before the reconciler checks Redis for it; covers the
/// moment between recording a run and enqueueing it.
const RECONCILE_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Most overdue runs one reconciler pass looks at.
const RECONCILE_BATCH: i64 = 500;
/// How long past its end a lease must be before its run is taken over: slack for clocks that
/// differ between instances (the worker itself stops its job when the lease ends).
const TAKEOVER_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
/// Pause before a failed catch-up (PostgreSQL or Redis away at start-up) is tried again.
const CATCH_UP_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Records the run of one tick and enqueues it. Returns whether this call recorded it.
pub async fn record_tick(
    tasks: &Tasks,
    queue: &Queue,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let inserted = store::insert(
        &tasks.db,
        store::NewRun {
            task_name: &schedule.task_name,
            args: &schedule.args,
            max_attempts: tasks.max_attempts(),
            scheduled_for: Some(tick),
        },
        tasks.clock.now(),
    )
    .await
    .context("recording a scheduled run")?;
    let Some(run) = inserted else {
        return Ok(false);
    };
    tracing::debug!(run_id = %run.id, task = %run.task_name, scheduled_for = %tick, "scheduled run recorded");
    if let Err(e) = queue.push(run.id).await {
        // The run is recorded as queued; the reconciler enqueues it when Redis is back.
        tracing::warn!(run_id = %run.id, error = format!("{e:#}"), "enqueueing a scheduled run failed");
    }
    Ok(true)
}

/// On start: when ticks were missed while no scheduler ran (the latest recorded tick is older
/// than the cron's previous fire time), records ONE run for the previous fire time, standing for
/// all of them. A task never run before has missed nothing. Returns the tick it recorded from.
pub async fn catch_up(
    tasks: &Tasks,
    queue: &Queue,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    let Some(previous) = schedule.previous_at_or_before(now) else {
        return Ok(now);
    };
    let last = store::last_scheduled_for(&tasks.db, &schedule.task_name).await?;
    // A task that never ran counts as behind too: a fresh installation fetches rates at once
    // instead of waiting up to a whole interval.
    if last.is_none_or(|last| last < previous) {
        tracing::debug!(task = %schedule.task_name, ?last, %previous, "catching up on missed ticks with one run");
        record_tick(tasks, queue, schedule, previous).await?;
    }
    Ok(previous)
}

/// The tick to record on a wake-up at `now`: the newest fire time after `cursor`. Ticks missed
/// while the scheduler could not record them (PostgreSQL away, the process stalled) collapse
/// into that one run, as they do after downtime ([`catch_up`]): a job run at the latest tick
/// does everything the missed ones would have, and replaying them one by one would only delay
/// the fresh run behind stale ones.
fn latest_due_tick(
    schedule: &Schedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let latest = schedule.previous_at_or_before(now)?;
    if latest <= cursor {
        return None;
    }
    let missed = schedule
        .ticks_between(cursor, latest, MAX_TICKS_PER_WAKE)
        .len();
    if missed > 1 {
        tracing::info!(task = %schedule.task_name, missed, %latest, "collapsing missed ticks into one run");
    }
    Some(latest)
}

/// Runs the cron scheduler until `shutdown`.
pub(super) async fn run_scheduler(
    tasks: Tasks,
    registry: Arc<TaskRegistry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let queue = tasks.queue();
    let mut scheduler = JobScheduler::new()
        .await
        .context("starting the cron scheduler")?;
    for schedule in registry.schedules() {
        // Ticks at or before this cursor are recorded (by this instance or another). Each wake
        // records every tick since, so a late or skipped wake-up loses nothing.
        let cursor = loop {
            match catch_up(&tasks, &queue, schedule, tasks.clock.now()).await {
                Ok(cursor) => break cursor,
                Err(e) => {
                    tracing::warn!(task = %schedule.task_name, error = format!("{e:#}"), "catch-up failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(CATCH_UP_RETRY_PAUSE) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
            }
        };
        let cursor = Arc::new(Mutex::new(cursor));
        let task_name = schedule.task_name.clone();
        let expression = schedule.expression.clone();
        let (tasks, queue, schedule) = (tasks.clone(), queue.clone(), schedule.clone());
        let job = CronJob::new_async(expression.as_str(), move |_, _| {
            let (tasks, queue, schedule, cursor) =
                (tasks.clone(), queue.clone(), schedule.clone(), cursor.clone());
            Box::pin(async move {
                let mut cursor = cursor.lock().await;
                let Some(tick) = latest_due_tick(&schedule, *cursor, tasks.clock.now()) else {
                    return;
                };
                match record_tick(&tasks, &queue, &schedule, tick).await {
                    Ok(_) => *cursor = tick,
                    // PostgreSQL is away: the tick stays due, and the ones that fall due until
                    // it is back join it in the one run recorded then.
                    Err(e) => tracing::error!(task = %schedule.task_name, %tick, error = format!("{e:#}"), "recording a tick failed"),
                }
            })
        })
        .with_context(|| format!("scheduling task `{task_name}`"))?;
        scheduler.add(job).await?;
    }
    scheduler.start().await?;
    shutdown.cancelled().await;
    scheduler.shutdown().await?;
    Ok(())
}

/// Re-enqueues overdue runs whose message Redis no longer has. Returns how many.
///
/// Overdue is judged on the injected clock. The list of overdue runs is read before Redis is
/// asked, so a run can leave both in between without being lost: a worker finished it (or
/// parked it for later) and acknowledged its message. Every such change reaches PostgreSQL
/// before Redis forgets the message, so only a run that is *still* overdue after Redis said it
/// has no message for it is lost; the others are left alone (and not reported).
pub async fn reconcile_once(tasks: &Tasks, queue: &Queue) -> anyhow::Result<usize> {
    take_over_lapsed(tasks, queue).await?;
    let before = tasks.clock.now() - RECONCILE_GRACE;
    let overdue = store::overdue(&tasks.db, before, None, RECONCILE_BATCH).await?;
    reconcile(tasks, queue, &overdue).await
}

/// Takes over the runs whose lease lapsed ([`store::take_over_lapsed`]) and enqueues those due
/// again, so that a worker that lost PostgreSQL holds its task up for one lease, not for the
/// visibility timeout after which Redis would redeliver its message. The old message may still
/// come back later: it finds the run finished, or claims it like any due run (claims are one
/// conditional UPDATE, so never twice at once). Returns how many were taken over.
pub async fn take_over_lapsed(tasks: &Tasks, queue: &Queue) -> anyhow::Result<usize> {
    let now = tasks.clock.now();
    let due_again = store::take_over_lapsed(&tasks.db, now - TAKEOVER_MARGIN, now, RECONCILE_BATCH)
        .await
        .context("taking over runs whose lease lapsed")?;
    for run_id in &due_again {
        if let Err(e) = queue.push(*run_id).await {
            // `retrying` and due in PostgreSQL: the overdue check below finds it once Redis is back.
            tracing::warn!(%run_id, error = format!("{e:#}"), "enqueueing a run taken over failed");
        }
    }
    if !due_again.is_empty() {
        tracing::warn!(runs = due_again.len(), "took over runs whose lease lapsed");
    }
    Ok(due_again.len())
}

/// The second half of [`reconcile_once`]: of `overdue` (runs that were overdue a moment ago),
/// re-enqueues those Redis has no message for and PostgreSQL still says are overdue.
pub async fn reconcile(tasks: &Tasks, queue: &Queue, overdue: &[Uuid]) -> anyhow::Result<usize> {
    if overdue.is_empty() {
        return Ok(0);
    }
    let present = queue.present(overdue).await?;
    let absent: Vec<Uuid> = overdue
        .iter()
        .zip(present)
        .filter_map(|(id, present)| (!present).then_some(*id))
        .collect();
    if absent.is_empty() {
        return Ok(0);
    }
    let before = tasks.clock.now() - RECONCILE_GRACE;
    let lost = store::overdue(&tasks.db, before, Some(&absent), RECONCILE_BATCH).await?;
    for run_id in &lost {
        queue.push(*run_id).await?;
    }
    if !lost.is_empty() {
        tracing::warn!(pushed = lost.len(), "re-enqueued runs that Redis had lost");
    }
    Ok(lost.len())
}

/// Runs [`reconcile_once`] every `every` until `shutdown`.
pub(super) async fn reconcile_loop(tasks: Tasks, every: Duration, shutdown: CancellationToken) {
    let queue = tasks.queue();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = reconcile_once(&tasks, &queue).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "reconciling the task queue failed"
            );
        }
    }
}

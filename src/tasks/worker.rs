//! Workers: read a run id from the stream, claim the run in PostgreSQL, execute it with a lease
//! (`tasks.lease_secs`) kept alive by a heartbeat every third of it, record the outcome,
//! acknowledge. A worker that loses its lease (taken over, or not renewed before it ended, as
//! when PostgreSQL is unreachable) stops the job at once, since the reconciler may hand the run
//! to another worker as soon as the lease has lapsed; one shutting down hands its run back to
//! the queue at once. Also the promoter that moves due retries from the delayed set to the
//! stream.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::Tasks;
use super::queue::{Message, Queue};
use super::registry::{RunInfo, TaskRegistry};
use super::store::{self, Attempt, Claim, TaskState};
use crate::clock::Clock;

/// Longest retry delay, whatever the attempt number.
const MAX_BACKOFF_MS: u64 = 6 * 3600 * 1000;

/// Slack after a lease's expiry before a parked run is tried again, for clock skew between this
/// process and PostgreSQL.
const LEASE_EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// How long a run waits when another run of its task is running.
const OVERLAP_DEFER: Duration = Duration::from_secs(1);
/// How long a run waits when claiming it failed (PostgreSQL away) before it is read again.
const CLAIM_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pause before reading the queue again after Redis failed (away, or its data gone).
const QUEUE_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause between tries to record an outcome while PostgreSQL does not answer (within the lease).
const RECORD_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The delay before retrying after failed attempt number `attempt` (1-based): exponential with
/// full jitter, uniformly drawn from `[0, min(cap, base * 2^(attempt-1))]`, so that many runs
/// failing together do not retry together.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let ceiling = base_ms.saturating_mul(1u64 << exp).min(MAX_BACKOFF_MS);
    Duration::from_millis(rand::random_range(0..=ceiling))
}

/// One worker's fixed parts.
pub(super) struct Worker {
    pub tasks: Tasks,
    pub registry: Arc<TaskRegistry>,
    pub queue: Queue,
    pub id: String,
}

impl Worker {
    /// How long a claim or a renewal holds the run (`tasks.lease_secs`).
    fn lease(&self) -> Duration {
        Duration::from_secs(self.tasks.settings.lease_secs.max(1))
    }

    /// Reads and executes runs until `shutdown`; a run in progress then gets the shutdown grace
    /// period to finish, after which it is stopped and queued again for another worker.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::debug!(worker = %self.id, "task worker started");
        let visibility = Duration::from_secs(self.tasks.settings.visibility_timeout_secs.max(1));
        let visibility_ms = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
        let mut group_ready = false;
        while !shutdown.is_cancelled() {
            if !group_ready {
                group_ready = self.queue.ensure_group().await.is_ok();
            }
            let next = tokio::select! {
                next = self.queue.next(&self.id, visibility_ms) => next,
                _ = shutdown.cancelled() => break,
            };
            match next {
                Ok(Some(message)) => self.handle(message, &shutdown).await,
                Ok(None) => {}
                Err(e) => {
                    // Redis away, or its data (and the group) gone: retry after a pause.
                    tracing::warn!(worker = %self.id, error = format!("{e:#}"), "reading the task queue failed");
                    group_ready = false;
                    tokio::select! {
                        _ = tokio::time::sleep(QUEUE_RETRY_PAUSE) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        tracing::debug!(worker = %self.id, "task worker stopped");
    }

    async fn handle(&self, message: Message, shutdown: &CancellationToken) {
        let Some(run_id) = message.run_id else {
            tracing::warn!(entry = %message.id, "dropping a task message without a run id");
            self.ack(&message).await;
            return;
        };
        let lease_secs = self.lease().as_secs_f64();
        // The lease is counted from before the claim was asked for, so this worker's idea of
        // when it ends is never later than PostgreSQL's.
        let asked = Instant::now();
        match store::claim(
            &self.tasks.db,
            run_id,
            &self.id,
            lease_secs,
            self.tasks.clock.now(),
        )
        .await
        {
            Ok(Claim::Claimed(run)) => self.execute(*run, &message, shutdown, asked).await,
            // Someone holds a live lease. Leaving the message pending would wait a whole
            // visibility timeout from now (this delivery resets its idle time), on top of the
            // lease: park the run until the lease ends instead. If its holder finishes first,
            // the parked message finds the run finished and is dropped.
            Ok(Claim::Busy(until)) => {
                let due = until.unwrap_or_else(|| self.tasks.clock.now()) + LEASE_EXPIRY_MARGIN;
                if self.queue.delay(run_id, due).await.is_ok() {
                    self.ack(&message).await;
                }
            }
            Ok(Claim::Overlap) => {
                let due = self.tasks.clock.now() + OVERLAP_DEFER;
                if let Err(e) = store::defer(&self.tasks.db, run_id, due).await {
                    // Redis brings it back all the same; at worst the reconciler enqueues it
                    // once more meanwhile, and claims are exclusive.
                    tracing::warn!(%run_id, error = %e, "deferring an overlapping run failed");
                }
                if self.queue.delay(run_id, due).await.is_ok() {
                    self.ack(&message).await;
                }
            }
            Ok(Claim::Exhausted) => {
                tracing::warn!(%run_id, "run is dead: its worker was lost on the last attempt");
                self.ack(&message).await;
            }
            Ok(Claim::Stale) => self.ack(&message).await,
            // PostgreSQL away: the run comes back in a moment, not after the visibility timeout
            // (left unacknowledged only if Redis refuses that too).
            Err(e) => {
                tracing::warn!(%run_id, error = %e, "claiming a run failed; trying again shortly");
                let due = self.tasks.clock.now() + CLAIM_RETRY_PAUSE;
                if self.queue.delay(run_id, due).await.is_ok() {
                    self.ack(&message).await;
                }
            }
        }
    }

    #[tracing::instrument(name = "task_run", skip_all, fields(run_id = %run.id, task = %run.task_name, attempt = run.attempts))]
    async fn execute(
        &self,
        run: store::TaskRun,
        message: &Message,
        shutdown: &CancellationToken,
        claimed: Instant,
    ) {
        let started = Instant::now();
        let Some(handler) = self.registry.handler(&run.task_name) else {
            let error = format!("no job is registered under the name `{}`", run.task_name);
            let lease_holds_until = claimed + self.lease();
            self.record(
                &run,
                started,
                TaskState::Failed,
                Some(&error),
                message,
                lease_holds_until,
            )
            .await;
            return;
        };
        let ctx = RunInfo {
            run_id: run.id,
            attempt: run.attempts,
            scheduled_for: run.scheduled_for,
        };
        // A panicking job must not take the worker down: catch it and record it as a failure.
        // Boxed so that it can be dropped (stopped) before the lease is handed back.
        let mut job = Box::pin(AssertUnwindSafe(handler(ctx, run.args.clone())).catch_unwind());
        let lease = self.lease();
        let mut heartbeat = tokio::time::interval(lease / 3);
        heartbeat.tick().await;
        // Until when our lease surely holds: the last extension asked for `lease` from before it
        // was sent. Past it, with the heartbeat failing, another worker may own the run.
        let mut lease_holds_until = claimed + lease;
        let grace = self.tasks.shutdown_timeout;
        let give_up = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(give_up);
        let outcome = loop {
            tokio::select! {
                outcome = &mut job => break Some(outcome),
                _ = heartbeat.tick() => {
                    let asked = Instant::now();
                    // Never waits past the lease: a renewal that PostgreSQL has not answered by
                    // then is as good as refused.
                    let renewal = tokio::time::timeout_at(
                        lease_holds_until.into(),
                        store::extend_lease(&self.tasks.db, run.id, &self.id, run.attempts, lease.as_secs_f64(), self.tasks.clock.now()),
                    );
                    match renewal.await {
                        Ok(Ok(true)) => lease_holds_until = asked + lease,
                        Ok(Ok(false)) => {
                            tracing::warn!("the run was taken over; stopping the job");
                            return;
                        }
                        Ok(Err(e)) if Instant::now() < lease_holds_until => {
                            tracing::warn!(error = %e, "could not extend the lease of a running job");
                        }
                        Ok(Err(_)) | Err(_) => {
                            tracing::warn!("the lease could not be renewed before it ended; stopping the job");
                            return;
                        }
                    }
                }
                // The lease ends unrenewed (PostgreSQL unreachable): the run may be taken over
                // from now on, so the job stops here rather than at the next heartbeat.
                _ = tokio::time::sleep_until(lease_holds_until.into()) => {
                    tracing::warn!("the lease ended unrenewed; stopping the job");
                    return;
                }
                _ = &mut give_up => break None,
            }
        };
        match outcome {
            None => {
                // Stop the job before handing the run back, so two attempts never overlap.
                drop(job);
                self.release(&run, message).await;
            }
            Some(Ok(Ok(()))) => {
                self.record(
                    &run,
                    started,
                    TaskState::Succeeded,
                    None,
                    message,
                    lease_holds_until,
                )
                .await;
            }
            Some(Ok(Err(e))) => {
                let error = format!("{e:#}");
                if run.attempts >= run.max_attempts {
                    tracing::error!(error, "job failed on its last attempt");
                    self.record(
                        &run,
                        started,
                        TaskState::Dead,
                        Some(&error),
                        message,
                        lease_holds_until,
                    )
                    .await;
                } else {
                    tracing::warn!(error, "job failed; will retry");
                    self.retry(&run, started, &error, message, lease_holds_until)
                        .await;
                }
            }
            Some(Err(panic)) => {
                let error = format!("job panicked: {}", panic_message(panic.as_ref()));
                tracing::error!(error, "job panicked");
                self.record(
                    &run,
                    started,
                    TaskState::Failed,
                    Some(&error),
                    message,
                    lease_holds_until,
                )
                .await;
            }
        }
    }

    fn attempt<'a>(&'a self, run: &store::TaskRun, started: Instant) -> Attempt<'a> {
        Attempt {
            id: run.id,
            worker_id: &self.id,
            attempt: run.attempts,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Records an attempt's outcome, trying again while PostgreSQL does not answer and the
    /// lease still holds (`until`): an outcome recorded within the lease is final, so a short
    /// outage does not make the run's work be done again. Past the lease the run is the
    /// reconciler's to take over, and the outcome is given up.
    async fn finish_within_lease(
        &self,
        attempt: &Attempt<'_>,
        state: TaskState,
        error: Option<&str>,
        next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
        until: Instant,
    ) -> sqlx::Result<bool> {
        loop {
            let now = self.tasks.clock.now();
            let tried = tokio::time::timeout_at(
                until.into(),
                store::finish(&self.tasks.db, attempt, state, error, next_attempt_at, now),
            )
            .await;
            match tried {
                Ok(Ok(recorded)) => return Ok(recorded),
                Ok(Err(e)) if Instant::now() + RECORD_RETRY_PAUSE < until => {
                    tracing::warn!(error = %e, "recording the outcome of a run failed; trying again within the lease");
                    tokio::time::sleep(RECORD_RETRY_PAUSE).await;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            }
        }
    }

    async fn record(
        &self,
        run: &store::TaskRun,
        started: Instant,
        state: TaskState,
        error: Option<&str>,
        message: &Message,
        lease_holds_until: Instant,
    ) {
        let attempt = self.attempt(run, started);
        match self
            .finish_within_lease(&attempt, state, error, None, lease_holds_until)
            .await
        {
            Ok(recorded) => {
                if !recorded {
                    tracing::warn!("the run was taken over before this attempt finished");
                }
                self.ack(message).await;
            }
            // Not acknowledged: once the lease has lapsed the reconciler takes the run over and
            // it is tried again.
            Err(e) => tracing::error!(error = %e, "recording the outcome of a run failed"),
        }
    }

    async fn retry(
        &self,
        run: &store::TaskRun,
        started: Instant,
        error: &str,
        message: &Message,
        lease_holds_until: Instant,
    ) {
        let base = Duration::from_secs(self.tasks.settings.retry_base_secs);
        let delay = retry_delay(base, run.attempts);
        let due = self.tasks.clock.now() + delay;
        let attempt = self.attempt(run, started);
        match self
            .finish_within_lease(
                &attempt,
                TaskState::Retrying,
                Some(error),
                Some(due),
                lease_holds_until,
            )
            .await
        {
            Ok(true) => {
                // If Redis fails here, the run is `retrying` in PostgreSQL and the reconciler
                // enqueues it once it is due.
                if let Err(e) = self.queue.delay(run.id, due).await {
                    tracing::warn!(error = format!("{e:#}"), "parking a retry in Redis failed");
                }
                self.ack(message).await;
            }
            Ok(false) => self.ack(message).await,
            Err(e) => tracing::error!(error = %e, "recording a failed attempt failed"),
        }
    }

    /// Hands a run interrupted by shutdown back to the queue at once, instead of leaving it to
    /// wait out its lease. The attempt still counts; on the last one the run is left to expire
    /// and be declared dead, as when a worker dies.
    async fn release(&self, run: &store::TaskRun, message: &Message) {
        match store::release(
            &self.tasks.db,
            run.id,
            &self.id,
            run.attempts,
            self.tasks.clock.now(),
        )
        .await
        {
            Ok(true) => {
                tracing::warn!("shutting down with the job still running; its run is queued again");
                // If Redis fails here, the run is `queued` in PostgreSQL and the reconciler
                // enqueues it.
                if let Err(e) = self.queue.push(run.id).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "re-enqueueing a released run failed"
                    );
                }
                self.ack(message).await;
            }
            Ok(false) => tracing::warn!(
                "shutting down with the job still running; it will be redelivered after its lease"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "releasing the lease failed; the run will be redelivered after it")
            }
        }
    }

    async fn ack(&self, message: &Message) {
        if let Err(e) = self.queue.ack(message).await {
            // Harmless: a redelivered message finds the run finished and is dropped then.
            tracing::warn!(entry = %message.id, error = format!("{e:#}"), "acknowledging a task message failed");
        }
    }
}

/// Moves due delayed runs to the stream, every `every`, until `shutdown`.
pub(super) async fn promote_loop(
    queue: Queue,
    clock: Clock,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = queue.promote_due(clock.now()).await {
            tracing::debug!(error = format!("{e:#}"), "promoting due task runs failed");
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_stays_within_the_doubling_ceiling() {
        let base = Duration::from_secs(10);
        for attempt in 1..=5 {
            let ceiling = Duration::from_secs(10 * (1 << (attempt - 1)));
            for _ in 0..200 {
                assert!(retry_delay(base, attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn retry_delay_is_capped_for_large_attempt_numbers() {
        let d = retry_delay(Duration::from_secs(10), 1000);
        assert!(d <= Duration::from_millis(MAX_BACKOFF_MS));
    }

    #[test]
    fn retry_delay_is_jittered() {
        let draws: std::collections::HashSet<_> = (0..50)
            .map(|_| retry_delay(Duration::from_secs(10), 3))
            .collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
    }
}

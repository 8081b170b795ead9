//! The task queue: running what is queued as a worker would.

use currency_conversion::state::{AppState, ProcessRole};
use currency_conversion::tasks::{self, TaskStats, Tasks};

use super::TestApp;

/// The task queue handle of a process with `state`'s pools, clock and settings.
pub fn task_queue(state: &AppState) -> Tasks {
    Tasks::new(
        state.db.clone(),
        state.redis.clone(),
        state.clock.clone(),
        &state.settings,
    )
}

impl TestApp {
    /// Runs every queued run to completion with the app's own workers and task registry, as a
    /// worker process would, and returns the counts once nothing is queued or running. Runs
    /// parked for a later retry stay parked (move the clock and call it again).
    pub async fn run_pending_jobs(&self) -> TaskStats {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let workers = tasks::start_background(
            self.task_queue.clone(),
            self.tasks.clone(),
            ProcessRole::Worker,
            shutdown.clone(),
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let stats = loop {
            let stats = tasks::stats(&self.task_queue).await.unwrap();
            if stats.queued == 0 && stats.running == 0 {
                break stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "runs still pending after 30 s: {stats:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        shutdown.cancel();
        futures_util::future::join_all(workers).await;
        stats
    }
}

//! Background tasks: the machinery that runs jobs, not the jobs themselves (those live with the
//! capability they serve and are registered in a [`TaskRegistry`]).
//!
//! - PostgreSQL (`task_runs`) is the record of every run and decides every race: claims,
//!   outcomes, one run per cron tick, one running run per task.
//! - Redis is the transport: a stream read through a consumer group, a delayed set for retries.
//!   It may lose everything; the reconciler re-enqueues from PostgreSQL.
//! - Workers (role `worker`/`all`) execute runs; the scheduler and reconciler run in role
//!   `scheduler`/`all`.
//!
//! This module owns `task_runs` and the `tasks:*` Redis keys, and knows nothing about rates or
//! conversions.

pub mod prune;
pub mod queue;
pub mod registry;
pub mod routes;
pub mod scheduler;
pub mod store;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use prune::Prune;
pub use queue::Queue;
pub use registry::{Job, JobContext, Schedule, TaskRegistry};
pub use store::{TaskRun, TaskState};

use crate::state::{AppState, ProcessRole};

/// How often delayed messages (retries, runs due later) are moved onto the stream: the lateness
/// a retry can have beyond its backoff.
const PROMOTE_INTERVAL: Duration = Duration::from_millis(250);
/// The reconciler looks for runs Redis lost every half visibility timeout, within these bounds:
/// no busier than twice a second, no lazier than every 30 s.
const RECONCILE_EVERY_MIN: Duration = Duration::from_millis(500);
const RECONCILE_EVERY_MAX: Duration = Duration::from_secs(30);

/// What can go wrong with a task request.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no task named `{0}`")]
    UnknownTask(String),
    #[error("no task run {0}")]
    RunNotFound(Uuid),
    #[error("run {id} is {state:?}; only dead or failed runs can be retried")]
    NotRetryable { id: Uuid, state: TaskState },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        TaskError::Unexpected(e.into())
    }
}

impl From<TaskError> for crate::error::ApiError {
    fn from(e: TaskError) -> Self {
        use crate::error::ApiError;
        match e {
            TaskError::UnknownTask(_) | TaskError::RunNotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            TaskError::NotRetryable { .. } => ApiError::Conflict(e.to_string()),
            TaskError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

/// The registry of the jobs this module owns (`prune`), with their schedules from `settings`.
/// Other capabilities add theirs to it at start-up.
pub fn registry(state: &AppState) -> anyhow::Result<TaskRegistry> {
    let settings = &state.settings;
    let mut registry = TaskRegistry::new();
    registry.register::<Prune>(prune::PruneContext {
        db: state.db.clone(),
        clock: state.clock.clone(),
        retention_days: settings.tasks.retention_days,
    });
    registry.schedule(Prune::NAME, &settings.tasks.schedule.prune)?;
    Ok(registry)
}

/// Records a run of task `name` due now and enqueues it. The run is recorded even when Redis is
/// away; the reconciler enqueues it later.
pub async fn enqueue(
    state: &AppState,
    registry: &TaskRegistry,
    name: &str,
    args: serde_json::Value,
) -> Result<TaskRun, TaskError> {
    if !registry.contains(name) {
        return Err(TaskError::UnknownTask(name.to_owned()));
    }
    let max_attempts = i32::try_from(state.settings.tasks.max_attempts).unwrap_or(i32::MAX);
    let run = store::insert(
        &state.db,
        store::NewRun {
            task_name: name,
            args: &args,
            max_attempts,
            scheduled_for: None,
        },
        state.clock.now(),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("an unscheduled run cannot conflict"))?;
    push_or_leave_to_reconciler(state, run.id).await;
    Ok(run)
}

/// Enqueues a `job` of a registered [`Job`] type.
pub async fn enqueue_job<J: Job>(
    state: &AppState,
    registry: &TaskRegistry,
    job: &J,
) -> Result<TaskRun, TaskError> {
    let args = serde_json::to_value(job).map_err(anyhow::Error::from)?;
    enqueue(state, registry, J::NAME, args).await
}

/// Puts a dead or failed run back in the queue with fresh attempts.
pub async fn retry(state: &AppState, id: Uuid) -> Result<TaskRun, TaskError> {
    match store::requeue_finished(&state.db, id, state.clock.now()).await? {
        Ok(Some(run)) => {
            push_or_leave_to_reconciler(state, run.id).await;
            Ok(run)
        }
        Ok(None) => Err(TaskError::RunNotFound(id)),
        Err(state) => Err(TaskError::NotRetryable { id, state }),
    }
}

async fn push_or_leave_to_reconciler(state: &AppState, run_id: Uuid) {
    if let Err(e) = Queue::new(state.redis.clone()).push(run_id).await {
        tracing::warn!(%run_id, error = format!("{e:#}"), "enqueueing a run failed; the reconciler will");
    }
}

/// Starts the background pieces of `role`: workers and the retry promoter for `worker`/`all`,
/// the cron scheduler and the reconciler for `scheduler`/`all`. They stop when `shutdown` is
/// cancelled (a running job gets `server.shutdown_timeout_secs` to finish); await the handles.
pub fn start_background(
    state: AppState,
    registry: Arc<TaskRegistry>,
    role: ProcessRole,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    let tasks = &state.settings.tasks;
    let visibility = Duration::from_secs(tasks.visibility_timeout_secs.max(1));
    if role.runs_workers() {
        let instance = Uuid::new_v4().simple().to_string();
        for n in 0..tasks.workers.max(1) {
            let worker = worker::Worker {
                state: state.clone(),
                registry: registry.clone(),
                queue: Queue::new(state.redis.clone()),
                id: format!("{}-{n}", &instance[..12]),
            };
            handles.push(tokio::spawn(worker.run(shutdown.clone())));
        }
        handles.push(tokio::spawn(worker::promote_loop(
            Queue::new(state.redis.clone()),
            state.clock.clone(),
            PROMOTE_INTERVAL,
            shutdown.clone(),
        )));
    }
    if role.runs_scheduler() {
        let (s, r, token) = (state.clone(), registry.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            if let Err(e) = scheduler::run_scheduler(s, r, token).await {
                tracing::error!(error = format!("{e:#}"), "the cron scheduler stopped");
            }
        }));
        let every = (visibility / 2).clamp(RECONCILE_EVERY_MIN, RECONCILE_EVERY_MAX);
        handles.push(tokio::spawn(scheduler::reconcile_loop(
            state.clone(),
            every,
            shutdown.clone(),
        )));
    }
    handles
}

/// Counts for the stats endpoint.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TaskStats {
    /// Stream entries (waiting or being worked on); null when Redis is unreachable.
    pub queue_depth: Option<u64>,
    /// Messages delivered to a worker and not yet acknowledged; null when Redis is unreachable.
    pub pending: Option<u64>,
    /// Runs parked in Redis until their retry is due; null when Redis is unreachable.
    pub delayed: Option<u64>,
    /// Runs per state, from the record.
    pub queued: i64,
    pub running: i64,
    pub retrying: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub dead: i64,
}

/// Queue depth from Redis and run counts from PostgreSQL.
pub async fn stats(state: &AppState) -> Result<TaskStats, TaskError> {
    let counts = store::count_by_state(&state.db).await?;
    let count = |s: TaskState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let depth = Queue::new(state.redis.clone()).depth().await.ok();
    Ok(TaskStats {
        queue_depth: depth.map(|d| d.stream),
        pending: depth.map(|d| d.pending),
        delayed: depth.map(|d| d.delayed),
        queued: count(TaskState::Queued),
        running: count(TaskState::Running),
        retrying: count(TaskState::Retrying),
        succeeded: count(TaskState::Succeeded),
        failed: count(TaskState::Failed),
        dead: count(TaskState::Dead),
    })
}

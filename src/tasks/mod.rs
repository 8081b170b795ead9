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

pub use queue::Queue;
pub use registry::{Job, JobContext, RunInfo, Schedule, TaskRegistry};
pub use store::{TaskRun, TaskState};

use sqlx::PgPool;

use crate::clock::Clock;
use crate::redis_client::Redis;
use crate::settings::{Settings, TaskSettings};
use crate::state::ProcessRole;

/// How often delayed messages (retries, runs due later) are moved onto the stream: the lateness
/// a retry can have beyond its backoff.
const PROMOTE_INTERVAL: Duration = Duration::from_millis(250);
/// The reconciler looks for lapsed leases and runs Redis lost every half lease or half
/// visibility timeout, whichever is shorter, within these bounds: no busier than twice a second,
/// no lazier than every 30 s.
const RECONCILE_EVERY_MIN: Duration = Duration::from_millis(500);
const RECONCILE_EVERY_MAX: Duration = Duration::from_secs(30);

/// What the queue machinery runs with: the record (PostgreSQL), the transport (Redis), the
/// clock, `tasks.*` and the shutdown grace. Cheap to clone; routes get it as `web::Data<Tasks>`,
/// capabilities that enqueue runs hold one. The jobs' own contexts live in the
/// [`TaskRegistry`], never here.
#[derive(Clone)]
pub struct Tasks {
    /// PostgreSQL, where `task_runs` is the record of every run.
    pub db: PgPool,
    /// Redis, the transport (stream, consumer group, delayed set).
    pub redis: Redis,
    /// Now, for due times, leases and cron ticks.
    pub clock: Clock,
    /// `tasks.*`: workers, leases, attempts, retries, retention, schedules.
    pub settings: Arc<TaskSettings>,
    /// `server.shutdown_timeout_secs`: how long a running job may finish on shutdown.
    pub shutdown_timeout: Duration,
}

impl Tasks {
    /// The queue of a process: its pools and clock, and the `tasks` section and shutdown grace
    /// of `settings`.
    pub fn new(db: PgPool, redis: Redis, clock: Clock, settings: &Settings) -> Self {
        Self {
            db,
            redis,
            clock,
            settings: Arc::new(settings.tasks.clone()),
            shutdown_timeout: settings.shutdown_timeout(),
        }
    }

    /// `tasks.max_attempts` as stored in `task_runs.max_attempts`.
    fn max_attempts(&self) -> i32 {
        i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX)
    }

    fn queue(&self) -> Queue {
        Queue::new(self.redis.clone())
    }
}

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

/// Records a run of task `name` due now and enqueues it. The run is recorded even when Redis is
/// away; the reconciler enqueues it later.
pub async fn enqueue(
    tasks: &Tasks,
    registry: &TaskRegistry,
    name: &str,
    args: serde_json::Value,
) -> Result<TaskRun, TaskError> {
    if !registry.contains(name) {
        return Err(TaskError::UnknownTask(name.to_owned()));
    }
    let run = store::insert(
        &tasks.db,
        store::NewRun {
            task_name: name,
            args: &args,
            max_attempts: tasks.max_attempts(),
            scheduled_for: None,
        },
        tasks.clock.now(),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("an unscheduled run cannot conflict"))?;
    push_or_leave_to_reconciler(tasks, run.id).await;
    Ok(run)
}

/// Enqueues a `job` of a registered [`Job`] type.
pub async fn enqueue_job<J: Job>(
    tasks: &Tasks,
    registry: &TaskRegistry,
    job: &J,
) -> Result<TaskRun, TaskError> {
    let args = serde_json::to_value(job).map_err(anyhow::Error::from)?;
    enqueue(tasks, registry, J::NAME, args).await
}

/// Puts a dead or failed run back in the queue with fresh attempts.
pub async fn retry(tasks: &Tasks, id: Uuid) -> Result<TaskRun, TaskError> {
    match store::requeue_finished(&tasks.db, id, tasks.clock.now()).await? {
        Ok(Some(run)) => {
            push_or_leave_to_reconciler(tasks, run.id).await;
            Ok(run)
        }
        Ok(None) => Err(TaskError::RunNotFound(id)),
        Err(state) => Err(TaskError::NotRetryable { id, state }),
    }
}

async fn push_or_leave_to_reconciler(tasks: &Tasks, run_id: Uuid) {
    if let Err(e) = tasks.queue().push(run_id).await {
        tracing::warn!(%run_id, error = format!("{e:#}"), "enqueueing a run failed; the reconciler will");
    }
}

/// Starts the background pieces of `role`: workers and the retry promoter for `worker`/`all`,
/// the cron scheduler and the reconciler for `scheduler`/`all`. They stop when `shutdown` is
/// cancelled (a running job gets `server.shutdown_timeout_secs` to finish); await the handles.
pub fn start_background(
    tasks: Tasks,
    registry: Arc<TaskRegistry>,
    role: ProcessRole,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    let visibility = Duration::from_secs(tasks.settings.visibility_timeout_secs.max(1));
    if role.runs_workers() {
        let instance = Uuid::new_v4().simple().to_string();
        for n in 0..tasks.settings.workers.max(1) {
            let worker = worker::Worker {
                tasks: tasks.clone(),
                registry: registry.clone(),
                queue: tasks.queue(),
                id: format!("{}-{n}", &instance[..12]),
            };
            handles.push(tokio::spawn(worker.run(shutdown.clone())));
        }
        handles.push(tokio::spawn(worker::promote_loop(
            tasks.queue(),
            tasks.clock.clone(),
            PROMOTE_INTERVAL,
            shutdown.clone(),
        )));
    }
    if role.runs_scheduler() {
        let (t, r, token) = (tasks.clone(), registry.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            if let Err(e) = scheduler::run_scheduler(t, r, token).await {
                tracing::error!(error = format!("{e:#}"), "the cron scheduler stopped");
            }
        }));
        let lease = Duration::from_secs(tasks.settings.lease_secs.max(1));
        let every = (visibility.min(lease) / 2).clamp(RECONCILE_EVERY_MIN, RECONCILE_EVERY_MAX);
        handles.push(tokio::spawn(scheduler::reconcile_loop(
            tasks.clone(),
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
pub async fn stats(tasks: &Tasks) -> Result<TaskStats, TaskError> {
    let counts = store::count_by_state(&tasks.db).await?;
    let count = |s: TaskState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let depth = tasks.queue().depth().await.ok();
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

//! The `task_runs` table: the durable record of every run. State changes that race (claiming,
//! finishing, retrying) are single conditional UPDATEs, so PostgreSQL decides who wins; a worker
//! finishing a run fences on its worker id and attempt number, so a worker that lost its lease
//! cannot overwrite the outcome of the attempt that replaced it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a run is in its life. Stored as text in `task_runs.state` (a CHECK constraint lists
/// the values); a value this enum does not know fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker holding a live lease.
    Running,
    /// Finished without error.
    Succeeded,
    /// Failed; waits for `next_attempt_at` to be tried again.
    Retrying,
    /// Failed for good without retrying: the job panicked or cannot run at all.
    Failed,
    /// Failed on every one of its `max_attempts`.
    Dead,
}

impl TaskState {
    /// The value stored in `task_runs.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Retrying => "retrying",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
        }
    }
}

impl TryFrom<String> for TaskState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(match s.as_str() {
            "queued" => TaskState::Queued,
            "running" => TaskState::Running,
            "succeeded" => TaskState::Succeeded,
            "retrying" => TaskState::Retrying,
            "failed" => TaskState::Failed,
            "dead" => TaskState::Dead,
            _ => return Err(format!("unknown task state `{s}`")),
        })
    }
}

/// One run of a task, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskRun {
    pub id: Uuid,
    pub task_name: String,
    /// The job's arguments.
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    /// The cron tick this run was created for, if scheduled.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Duration of the latest finished attempt.
    pub duration_ms: Option<i64>,
    /// The worker of the latest attempt.
    pub worker_id: Option<String>,
    /// Error (or panic message) of the latest failed attempt.
    pub last_error: Option<String>,
    /// When a queued or retrying run is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// While running: until when the worker's lease holds.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

struct Row {
    id: Uuid,
    task_name: String,
    args: String,
    state: TaskState,
    attempts: i32,
    max_attempts: i32,
    scheduled_for: Option<DateTime<Utc>>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    worker_id: Option<String>,
    last_error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for TaskRun {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        // The text of a jsonb value, so it parses; if it ever did not, the row fails to decode
        // like any other malformed column instead of passing for arguments.
        let args = serde_json::from_str(&r.args).map_err(|e| sqlx::Error::ColumnDecode {
            index: "args".to_owned(),
            source: Box::new(e),
        })?;
        Ok(TaskRun {
            id: r.id,
            task_name: r.task_name,
            args,
            state: r.state,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            scheduled_for: r.scheduled_for,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            worker_id: r.worker_id,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            lease_expires_at: r.lease_expires_at,
        })
    }
}

// `args` travels as text (`args::text`) so that the pool needs no JSON codec.

/// A new run to record.
pub struct NewRun<'a> {
    pub task_name: &'a str,
    pub args: &'a serde_json::Value,
    pub max_attempts: i32,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// Records a queued run, due `now`. A scheduled run whose tick is already recorded (another
/// scheduler was first) returns `None`.
pub async fn insert(
    db: &PgPool,
    run: NewRun<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<TaskRun>> {
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO task_runs (id, task_name, args, max_attempts, scheduled_for, next_attempt_at)
           VALUES ($1, $2, $3::text::jsonb, $4, $5, $6)
           ON CONFLICT ON CONSTRAINT task_runs_schedule_tick_key DO NOTHING
           RETURNING id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at"#,
        Uuid::now_v7(),
        run.task_name,
        run.args.to_string(),
        run.max_attempts,
        run.scheduled_for,
        now,
    )
    .fetch_optional(db)
    .await?;
    row.map(TaskRun::try_from).transpose()
}

/// One run by id.
pub async fn get(db: &PgPool, id: Uuid) -> sqlx::Result<Option<TaskRun>> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at
           FROM task_runs WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    row.map(TaskRun::try_from).transpose()
}

/// Runs newest first, optionally of one task and/or in one state, strictly older than `before`.
pub async fn list(
    db: &PgPool,
    task_name: Option<&str>,
    state: Option<TaskState>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TaskRun>> {
    // One statement with and one without the task name, so each keeps its index
    // (`task_runs_task_name_id_idx`, the primary key) under a generic plan; the cursor defaults to
    // the greatest id instead of NULL for the same reason.
    let state = state.map(TaskState::as_str);
    let rows = match task_name {
        Some(task_name) => sqlx::query_as!(
            Row,
            r#"SELECT id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at
                   FROM task_runs
                   WHERE task_name = $1
                     AND ($2::text IS NULL OR state = $2)
                     AND id < COALESCE($3, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
                   ORDER BY id DESC
                   LIMIT $4"#,
            task_name,
            state,
            before,
            limit,
        )
        .fetch_all(db)
        .await?,
        None => sqlx::query_as!(
            Row,
            r#"SELECT id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at
                   FROM task_runs
                   WHERE ($1::text IS NULL OR state = $1)
                     AND id < COALESCE($2, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
                   ORDER BY id DESC
                   LIMIT $3"#,
            state,
            before,
            limit,
        )
        .fetch_all(db)
        .await?,
    };
    rows.into_iter().map(TaskRun::try_from).collect()
}

/// What a worker may do with a delivered run.
#[derive(Debug)]
pub enum Claim {
    /// It is ours now: run it.
    Claimed(Box<TaskRun>),
    /// Another worker holds a live lease on it, until the time given (if known).
    Busy(Option<DateTime<Utc>>),
    /// Another run of the same task is running: try later.
    Overlap,
    /// Its worker died on the last allowed attempt: it is dead now.
    Exhausted,
    /// Finished, not yet due, or unknown: the message is stale.
    Stale,
}

/// Atomically makes a run `running` for `worker_id`, if it is queued or retrying and due, or
/// running under an expired lease (its worker died). The attempt counter goes up with the claim,
/// so an attempt that crashed the worker still counts. Due times and leases are judged at `now`
/// (the injected clock), not by PostgreSQL's own.
pub async fn claim(
    db: &PgPool,
    id: Uuid,
    worker_id: &str,
    lease_secs: f64,
    now: DateTime<Utc>,
) -> sqlx::Result<Claim> {
    let claimed = sqlx::query_as!(
        Row,
        r#"UPDATE task_runs
           SET state = 'running', attempts = attempts + 1, started_at = $4::timestamptz, worker_id = $2,
               lease_expires_at = $4::timestamptz + make_interval(secs => $3), next_attempt_at = NULL,
               finished_at = NULL, duration_ms = NULL
           WHERE id = $1
             AND attempts < max_attempts
             AND ((state IN ('queued', 'retrying') AND next_attempt_at <= $4::timestamptz + interval '1 second')
                  OR (state = 'running' AND lease_expires_at < $4))
           RETURNING id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at"#,
        id,
        worker_id,
        lease_secs,
        now,
    )
    .fetch_optional(db)
    .await;
    match claimed {
        Ok(Some(row)) => return Ok(Claim::Claimed(Box::new(row.try_into()?))),
        Ok(None) => {}
        Err(e) if crate::error::unique_violation(&e) == Some("task_runs_one_running_per_task") => {
            return Ok(Claim::Overlap);
        }
        Err(e) => return Err(e),
    }
    let current = sqlx::query!(
        r#"SELECT state AS "state: TaskState",
                  coalesce(lease_expires_at < $2, false) AS "lease_expired!",
                  lease_expires_at
           FROM task_runs WHERE id = $1"#,
        id,
        now,
    )
    .fetch_optional(db)
    .await?
    .map(|row| (row.state, row.lease_expired, row.lease_expires_at));
    Ok(match current {
        Some((TaskState::Running, false, until)) => Claim::Busy(until),
        Some((TaskState::Running, true, _)) => {
            // Attempts are used up and the last worker is gone: nothing is left to try.
            let dead = sqlx::query!(
                "UPDATE task_runs
                 SET state = 'dead', finished_at = $2, lease_expires_at = NULL,
                     last_error = coalesce(last_error || '; ', '') || 'worker lost during the last attempt'
                 WHERE id = $1 AND state = 'running' AND lease_expires_at < $2",
                id,
                now,
            )
            .execute(db)
            .await?;
            if dead.rows_affected() == 1 {
                Claim::Exhausted
            } else {
                Claim::Stale
            }
        }
        _ => Claim::Stale,
    })
}

/// Extends the lease of a run this worker is executing. False when the run is no longer ours.
pub async fn extend_lease(
    db: &PgPool,
    id: Uuid,
    worker_id: &str,
    attempt: i32,
    lease_secs: f64,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE task_runs SET lease_expires_at = $5::timestamptz + make_interval(secs => $4)
         WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND state = 'running'",
        id,
        worker_id,
        attempt,
        lease_secs,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back a run this worker holds (it is shutting down): queued again, due now, so another
/// worker takes it without waiting for the lease to expire. False when the run is no longer
/// ours, or when this was its last attempt (then it expires and is declared dead as usual).
pub async fn release(
    db: &PgPool,
    id: Uuid,
    worker_id: &str,
    attempt: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE task_runs
         SET state = 'queued', lease_expires_at = NULL, next_attempt_at = $4
         WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND state = 'running'
           AND attempts < max_attempts",
        id,
        worker_id,
        attempt,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Identifies one attempt: the fence for recording its outcome.
pub struct Attempt<'a> {
    pub id: Uuid,
    pub worker_id: &'a str,
    pub attempt: i32,
    pub duration_ms: i64,
}

/// Records the outcome of an attempt: `succeeded`, `failed` or `dead` (with an error), or
/// `retrying` due at `next_attempt_at`. False when the attempt was no longer the current one.
pub async fn finish(
    db: &PgPool,
    attempt: &Attempt<'_>,
    state: TaskState,
    error: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE task_runs
         SET state = $4, last_error = $5, next_attempt_at = $6, duration_ms = $7,
             lease_expires_at = NULL,
             finished_at = CASE WHEN $4 = 'retrying' THEN NULL ELSE $8::timestamptz END
         WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND state = 'running'",
        attempt.id,
        attempt.worker_id,
        attempt.attempt,
        state.as_str(),
        error,
        next_attempt_at,
        attempt.duration_ms,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Postpones a queued or retrying run (another run of its task is running).
pub async fn defer(db: &PgPool, id: Uuid, until: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE task_runs SET next_attempt_at = $2
         WHERE id = $1 AND state IN ('queued', 'retrying')",
        id,
        until,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Puts a `dead` or `failed` run back in the queue with fresh attempts. `Err` carries the state
/// of a run that may not be retried; `Ok(None)` means no such run.
pub async fn requeue_finished(
    db: &PgPool,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Result<Option<TaskRun>, TaskState>> {
    let row = sqlx::query_as!(
        Row,
        r#"UPDATE task_runs
           SET state = 'queued', attempts = 0, next_attempt_at = $2, queued_at = $2,
               started_at = NULL, finished_at = NULL, duration_ms = NULL, worker_id = NULL
           WHERE id = $1 AND state IN ('dead', 'failed')
           RETURNING id, task_name, args::text AS "args!", state AS "state: TaskState", attempts,
                  max_attempts, scheduled_for, queued_at, started_at, finished_at, duration_ms,
                  worker_id, last_error, next_attempt_at, lease_expires_at"#,
        id,
        now,
    )
    .fetch_optional(db)
    .await?;
    if let Some(row) = row {
        return Ok(Ok(Some(row.try_into()?)));
    }
    Ok(match get(db, id).await? {
        Some(run) => Err(run.state),
        None => Ok(None),
    })
}

/// Takes over at most `limit` runs whose lease ended before `lapsed_before` (their worker lost
/// PostgreSQL, stalled or died, and stopped its job when it could not renew): each becomes
/// `retrying`, due `now`, its attempt counted as failed, or `dead` when that was its last
/// attempt. This frees the task's one running slot at once instead of when Redis redelivers the
/// message. Returns the runs that are due again, for the caller to enqueue.
pub async fn take_over_lapsed(
    db: &PgPool,
    lapsed_before: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let rows = sqlx::query!(
        r#"UPDATE task_runs
           SET state = CASE WHEN attempts < max_attempts THEN 'retrying' ELSE 'dead' END,
               next_attempt_at = CASE WHEN attempts < max_attempts THEN $2::timestamptz END,
               finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $2::timestamptz END,
               lease_expires_at = NULL,
               last_error = CASE WHEN attempts < max_attempts
                   THEN 'the lease lapsed (the worker lost PostgreSQL, stalled or died); taken over'
                   ELSE coalesce(last_error || '; ', '') || 'worker lost during the last attempt'
               END
           WHERE id IN (SELECT id FROM task_runs
                        WHERE state = 'running' AND lease_expires_at < $1
                        ORDER BY lease_expires_at
                        LIMIT $3
                        FOR UPDATE SKIP LOCKED)
             AND state = 'running' AND lease_expires_at < $1
           RETURNING id, state AS "state: TaskState""#,
        lapsed_before,
        now,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.state == TaskState::Retrying)
        .map(|r| r.id)
        .collect())
}

/// Runs that should be in Redis by `before` and may not be: queued or retrying and due by then,
/// or running under a lease that ended by then. With `among`, only those runs.
pub async fn overdue(
    db: &PgPool,
    before: DateTime<Utc>,
    among: Option<&[Uuid]>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM task_runs
         WHERE ((state IN ('queued', 'retrying') AND next_attempt_at <= $1)
                OR (state = 'running' AND lease_expires_at <= $1))
           AND ($2::uuid[] IS NULL OR id = ANY($2))
         ORDER BY id
         LIMIT $3",
        before,
        among,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The latest cron tick recorded for a task.
pub async fn last_scheduled_for(
    db: &PgPool,
    task_name: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT max(scheduled_for) FROM task_runs WHERE task_name = $1",
        task_name
    )
    .fetch_one(db)
    .await
}

/// Number of runs per state.
pub async fn count_by_state(db: &PgPool) -> sqlx::Result<Vec<(TaskState, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT state AS "state: TaskState", count(*) AS "count!" FROM task_runs GROUP BY state"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.state, row.count)).collect())
}

/// Failed and dead runs the monitor lists under "Recent failures": the newest this many of
/// each state, which retention keeps whatever their age.
pub const RECENT_FAILURES: i64 = 10;

/// Deletes at most `limit` finished runs (succeeded, failed, dead) that finished before
/// `before`, except the newest [`RECENT_FAILURES`] failed and dead runs; returns how many.
pub async fn delete_finished_batch(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM task_runs WHERE id IN (
             SELECT id FROM task_runs
             WHERE state IN ('succeeded', 'failed', 'dead') AND finished_at < $1
               AND id NOT IN (SELECT id FROM task_runs WHERE state = 'failed'
                              ORDER BY id DESC LIMIT $3)
               AND id NOT IN (SELECT id FROM task_runs WHERE state = 'dead'
                              ORDER BY id DESC LIMIT $3)
             LIMIT $2)",
        before,
        limit,
        RECENT_FAILURES,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

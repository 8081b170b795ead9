-- One row per run of a background task. PostgreSQL is the record (Redis only carries run ids to
-- the workers), so everything needed to re-enqueue a run after Redis lost its data lives here.
CREATE TABLE task_runs (
    id               uuid PRIMARY KEY,
    task_name        text        NOT NULL CHECK (length(task_name) BETWEEN 1 AND 100),
    args             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state            text        NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'retrying', 'failed', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    -- The cron tick this run was created for; NULL for runs enqueued by hand or by code.
    scheduled_for    timestamptz,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    duration_ms      bigint      CHECK (duration_ms >= 0),
    worker_id        text,
    last_error       text,
    -- When a queued or retrying run becomes due.
    next_attempt_at  timestamptz,
    -- While running: the worker's lease, extended by its heartbeat. Past it, the worker is
    -- presumed dead and the run may be claimed again.
    lease_expires_at timestamptz,
    -- Exactly one run per cron tick, however many schedulers race to record it.
    CONSTRAINT task_runs_schedule_tick_key UNIQUE (task_name, scheduled_for),
    CONSTRAINT task_runs_running_has_lease CHECK (state <> 'running' OR lease_expires_at IS NOT NULL),
    CONSTRAINT task_runs_pending_has_due_time
        CHECK (state NOT IN ('queued', 'retrying') OR next_attempt_at IS NOT NULL)
);

-- No two runs of one task at the same time: a claim that would make a second one `running`
-- fails on this index and the run is deferred.
CREATE UNIQUE INDEX task_runs_one_running_per_task ON task_runs (task_name) WHERE state = 'running';

-- The reconciler's scan: unfinished runs by due time.
CREATE INDEX task_runs_unfinished_idx ON task_runs (next_attempt_at)
    WHERE state IN ('queued', 'retrying', 'running');

-- The retention job's scan.
CREATE INDEX task_runs_finished_idx ON task_runs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'dead');

-- Listing by task, newest first (ids are UUIDv7, so id order is creation order).
CREATE INDEX task_runs_task_name_id_idx ON task_runs (task_name, id DESC);

//! The task machinery against real PostgreSQL and Redis, with a test job whose behaviour the
//! test picks through its arguments, and which logs every attempt in a table the test creates.

mod leases;
mod outages;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use currency_conversion::clock::Clock;
use currency_conversion::settings::Settings;
use currency_conversion::state::{AppState, ProcessRole};
use currency_conversion::tasks::{self, Queue, TaskRegistry, TaskRun, TaskState, Tasks};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with, task_queue};
use crate::proxy::TcpProxy;

const TEST_JOB: &str = "test_job";

/// Short intervals so that redelivery and retries happen within seconds.
fn fast(s: &mut Settings) {
    s.tasks.visibility_timeout_secs = 1;
    s.tasks.lease_secs = 2;
    s.tasks.retry_base_secs = 1;
    s.tasks.max_attempts = 3;
    s.tasks.workers = 1;
    s.server.shutdown_timeout_secs = 1;
}

/// The test job. `args.mode`: `ok` (default) logs the attempt; `hang_first` hangs on attempt 1
/// and logs later attempts; `fail` logs and fails; `panic` panics.
/// The job runs with the test's own pool (`db`), where its log table is.
fn test_registry(cron: Option<&str>, db: sqlx::PgPool) -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry.register_fn(TEST_JOB, db, |ctx, args| async move {
        let mode = args["mode"].as_str().unwrap_or("ok").to_owned();
        if mode == "hang_first" && ctx.attempt == 1 {
            std::future::pending::<()>().await;
        }
        if mode == "panic" {
            panic!("deliberate panic");
        }
        sqlx::query("INSERT INTO test_job_log (run_id, attempt) VALUES ($1, $2)")
            .bind(ctx.run_id)
            .bind(ctx.attempt)
            .execute(&ctx.state)
            .await?;
        if mode == "fail" {
            anyhow::bail!("deliberate failure on attempt {}", ctx.attempt);
        }
        Ok(())
    });
    if let Some(cron) = cron {
        registry
            .schedule(TEST_JOB, &cron.parse().expect("valid schedule"))
            .expect("valid schedule");
    }
    registry
}

/// A quiet test app (HTTP only) plus background pieces the test starts and stops itself.
struct Harness {
    app: TestApp,
    /// The test's own pool: the app's pool must be idle when TestApp's Drop closes it.
    db: sqlx::PgPool,
    registry: Arc<TaskRegistry>,
    shutdown: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Harness {
    async fn new(cron: Option<&str>, customise: impl FnOnce(&mut Settings)) -> Self {
        let app = spawn_app_with(|s| {
            fast(s);
            customise(s);
        })
        .await;
        let db = AppState::new(app.settings.clone(), Clock::system())
            .unwrap()
            .db;
        sqlx::query(
            "CREATE TABLE test_job_log (run_id uuid NOT NULL, attempt int NOT NULL,
                 logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 PRIMARY KEY (run_id, attempt))",
        )
        .execute(&db)
        .await
        .unwrap();
        Self {
            app,
            registry: Arc::new(test_registry(cron, db.clone())),
            db,
            shutdown: CancellationToken::new(),
            handles: Vec::new(),
        }
    }

    /// A separate process's worth of queue: own pools, same database and key prefix.
    fn instance(&self) -> Tasks {
        task_queue(&AppState::new(self.app.settings.clone(), Clock::system()).unwrap())
    }

    fn start(&mut self, role: ProcessRole) -> Vec<JoinHandle<()>> {
        tasks::start_background(
            self.instance(),
            self.registry.clone(),
            role,
            self.shutdown.child_token(),
        )
    }

    fn start_kept(&mut self, role: ProcessRole) {
        let handles = self.start(role);
        self.handles.extend(handles);
    }

    async fn enqueue(&self, mode: &str) -> TaskRun {
        tasks::enqueue(
            &self.instance(),
            &self.registry,
            TEST_JOB,
            json!({ "mode": mode }),
        )
        .await
        .unwrap()
    }

    async fn run(&self, id: Uuid) -> TaskRun {
        tasks::store::get(&self.db, id).await.unwrap().unwrap()
    }

    async fn wait_for_state(&self, id: Uuid, state: TaskState, secs: u64) -> TaskRun {
        poll(secs, || async {
            let run = self.run(id).await;
            (run.state == state).then_some(run)
        })
        .await
        .unwrap_or_else(|| panic!("run {id} did not become {state:?}"))
    }

    async fn logged(&self, id: Uuid) -> Vec<i32> {
        sqlx::query_scalar("SELECT attempt FROM test_job_log WHERE run_id = $1 ORDER BY attempt")
            .bind(id)
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    async fn scheduled_runs(&self) -> Vec<TaskRun> {
        let mut runs = tasks::store::list(&self.db, Some(TEST_JOB), None, None, 1000)
            .await
            .unwrap();
        runs.retain(|r| r.scheduled_for.is_some());
        runs.sort_by_key(|r| r.scheduled_for);
        runs
    }

    /// Deletes every key of this test's prefix (never the shared server's other keys).
    async fn delete_redis_keys(&self) {
        let client = redis::Client::open(self.app.settings.redis.url.expose_secret()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.app.settings.redis.key_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "the queue should have written keys");
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        for handle in self.handles.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` every 50 ms until it yields a value or `secs` pass.
async fn poll<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_succeeds_once_and_is_acknowledged() {
    let mut h = Harness::new(None, |_| {}).await;
    h.start_kept(ProcessRole::Worker);
    let run = h.enqueue("ok").await;
    assert_eq!(run.state, TaskState::Queued);
    let done = h.wait_for_state(run.id, TaskState::Succeeded, 10).await;
    assert_eq!(done.attempts, 1);
    assert!(done.duration_ms.is_some() && done.finished_at.is_some());
    assert_eq!(h.logged(run.id).await, vec![1]);
    let depth = Queue::new(h.instance().redis).depth().await.unwrap();
    assert_eq!((depth.stream, depth.pending), (0, 0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_mid_job_is_redelivered_after_the_visibility_timeout() {
    let mut h = Harness::new(None, |_| {}).await;
    let first = h.start(ProcessRole::Worker);
    let run = h.enqueue("hang_first").await;
    let running = h.wait_for_state(run.id, TaskState::Running, 10).await;
    assert_eq!(running.attempts, 1);
    // The worker dies without acknowledging or recording anything.
    for handle in &first {
        handle.abort();
    }
    h.start_kept(ProcessRole::Worker);
    let done = h.wait_for_state(run.id, TaskState::Succeeded, 15).await;
    assert_eq!(done.attempts, 2);
    assert_ne!(done.worker_id, running.worker_id);
    assert_eq!(h.logged(run.id).await, vec![2], "the effect is stored once");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lost_by_redis_are_reenqueued_by_the_reconciler() {
    let mut h = Harness::new(None, |_| {}).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.enqueue("ok").await.id);
    }
    h.delete_redis_keys().await;
    h.start_kept(ProcessRole::All);
    for id in &ids {
        h.wait_for_state(*id, TaskState::Succeeded, 20).await;
        assert_eq!(h.logged(*id).await, vec![1]);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_with_backoff_then_dead_with_its_error() {
    let mut h = Harness::new(None, |_| {}).await;
    h.start_kept(ProcessRole::Worker);
    let run = h.enqueue("fail").await;
    let retrying = h.wait_for_state(run.id, TaskState::Retrying, 10).await;
    assert!(retrying.next_attempt_at.is_some());
    assert!(retrying.last_error.unwrap().contains("attempt 1"));
    let dead = h.wait_for_state(run.id, TaskState::Dead, 30).await;
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("deliberate failure on attempt 3"),
        "{:?}",
        dead.last_error
    );
    assert_eq!(h.logged(run.id).await, vec![1, 2, 3]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_recorded_as_failed_and_the_worker_survives() {
    let mut h = Harness::new(None, |_| {}).await;
    h.start_kept(ProcessRole::Worker);
    let panicking = h.enqueue("panic").await;
    let failed = h.wait_for_state(panicking.id, TaskState::Failed, 10).await;
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .contains("deliberate panic"),
        "{:?}",
        failed.last_error
    );
    assert_eq!(failed.attempts, 1, "a panic is not retried");
    // The only worker is still there.
    let next = h.enqueue("ok").await;
    h.wait_for_state(next.id, TaskState::Succeeded, 10).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_run_each_tick_exactly_once() {
    let mut h = Harness::new(Some("* * * * * *"), |_| {}).await;
    for _ in 0..3 {
        h.start_kept(ProcessRole::Scheduler);
    }
    h.start_kept(ProcessRole::Worker);
    let runs = poll(20, || async {
        let runs = h.scheduled_runs().await;
        let done = runs
            .iter()
            .filter(|r| r.state == TaskState::Succeeded)
            .count();
        (done >= 4).then_some(runs)
    })
    .await
    .expect("four ticks ran");
    h.stop().await;
    let ticks: Vec<DateTime<Utc>> = runs.iter().filter_map(|r| r.scheduled_for).collect();
    // Each tick at most once. A wake-up late by a whole period on a loaded machine collapses the
    // tick it missed into the next one, so ticks may skip a second but never repeat.
    for pair in ticks.windows(2) {
        assert!(pair[1] > pair[0], "ticks {ticks:?}");
    }
    for run in runs.iter().filter(|r| r.state == TaskState::Succeeded) {
        assert_eq!(
            h.logged(run.id).await,
            vec![1],
            "tick {:?}",
            run.scheduled_for
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_collapse_into_one_catch_up_run() {
    let mut h = Harness::new(Some("0 0 * * * *"), |_| {}).await;
    let schedule = h.registry.schedules().next().unwrap().clone();
    let previous = schedule.previous_at_or_before(Utc::now()).unwrap();
    let long_ago = previous - TimeDelta::hours(5);
    sqlx::query(
        "INSERT INTO task_runs (id, task_name, state, max_attempts, scheduled_for, finished_at)
         VALUES ($1, $2, 'succeeded', 3, $3, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(TEST_JOB)
    .bind(long_ago)
    .execute(&h.db)
    .await
    .unwrap();
    h.start_kept(ProcessRole::Scheduler);
    h.start_kept(ProcessRole::Scheduler);
    h.start_kept(ProcessRole::Worker);
    let catch_up = poll(15, || async {
        h.scheduled_runs()
            .await
            .into_iter()
            .find(|r| r.scheduled_for == Some(previous) && r.state == TaskState::Succeeded)
    })
    .await
    .expect("one catch-up run for the previous fire time");
    // Another instance starting now finds nothing more to catch up.
    let state = h.instance();
    tasks::scheduler::catch_up(
        &state,
        &Queue::new(state.redis.clone()),
        &schedule,
        Utc::now(),
    )
    .await
    .unwrap();
    h.stop().await;
    let runs = h.scheduled_runs().await;
    let ticks: Vec<_> = runs.iter().filter_map(|r| r.scheduled_for).collect();
    assert_eq!(
        ticks,
        vec![long_ago, previous],
        "five missed ticks, one run"
    );
    assert_eq!(h.logged(catch_up.id).await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_recorded_while_redis_is_unreachable_run_when_it_returns() {
    let proxy = TcpProxy::start("127.0.0.1:6379".into()).await;
    let port = proxy.port;
    let mut h = Harness::new(Some("* * * * * *"), |s| {
        s.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
        s.redis.timeout_ms = 300;
    })
    .await;
    proxy.cut();
    h.start_kept(ProcessRole::All);
    let during_outage = poll(15, || async {
        let runs = h.scheduled_runs().await;
        (runs.len() >= 2).then_some(runs)
    })
    .await
    .expect("ticks are recorded without Redis");
    assert!(during_outage.iter().all(|r| r.state == TaskState::Queued));
    proxy.restore();
    for run in &during_outage {
        h.wait_for_state(run.id, TaskState::Succeeded, 20).await;
        assert_eq!(h.logged(run.id).await, vec![1]);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_runs_lists_retries_and_reports() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    assert_problem(
        app.get("/api/v1/tasks/stats").await,
        401,
        "/problems/unauthorized",
    )
    .await;
    assert_problem(
        app.get_with_token("/api/v1/tasks/stats", &partner.token)
            .await,
        403,
        "/problems/forbidden",
    )
    .await;

    let res = app
        .post_json(
            "/api/v1/tasks/prune_expired_data/run",
            &json!({}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 202);
    let run: serde_json::Value = res.json().await.unwrap();
    assert_eq!(run["state"], "queued");
    assert_eq!(run["task_name"], "prune_expired_data");
    let id = run["id"].as_str().unwrap().to_owned();

    let res = app
        .get_with_token(&format!("/api/v1/tasks/runs/{id}"), &admin.token)
        .await;
    assert_eq!(res.status(), 200);

    assert_problem(
        app.post_json(
            "/api/v1/tasks/no_such_task/run",
            &json!({}),
            Some(&admin.token),
        )
        .await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_problem(
        app.post_json(
            &format!("/api/v1/tasks/runs/{id}/retry"),
            &json!({}),
            Some(&admin.token),
        )
        .await,
        409,
        "/problems/conflict",
    )
    .await;
    assert_problem(
        app.get_with_token(
            &format!("/api/v1/tasks/runs/{}", Uuid::now_v7()),
            &admin.token,
        )
        .await,
        404,
        "/problems/not-found",
    )
    .await;

    // Pagination: three runs, pages of two.
    for _ in 0..2 {
        let res = app
            .post_json(
                "/api/v1/tasks/prune_expired_data/run",
                &json!({}),
                Some(&admin.token),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let page: serde_json::Value = app
        .get_with_token(
            "/api/v1/tasks/runs?task=prune_expired_data&state=queued&limit=2",
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page: serde_json::Value = app
        .get_with_token(
            &format!("/api/v1/tasks/runs?task=prune_expired_data&limit=2&cursor={cursor}"),
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], id.as_str());
    assert!(page["next_cursor"].is_null());
    assert_problem(
        app.get_with_token("/api/v1/tasks/runs?limit=0", &admin.token)
            .await,
        422,
        "/problems/validation-failed",
    )
    .await;
    assert_problem(
        app.get_with_token("/api/v1/tasks/runs?state=sleeping", &admin.token)
            .await,
        422,
        "/problems/validation-failed",
    )
    .await;
    for (query, field) in [("task=pr%00une", "task"), ("limit=201", "limit")] {
        let problem = assert_problem(
            app.get_with_token(&format!("/api/v1/tasks/runs?{query}"), &admin.token)
                .await,
            422,
            "/problems/validation-failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    // A dead run can be retried, with fresh attempts.
    sqlx::query(
        "UPDATE task_runs SET state = 'dead', attempts = 5, finished_at = now(), next_attempt_at = NULL
         WHERE id = $1",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .execute(&AppState::new(app.settings.clone(), Clock::system()).unwrap().db)
    .await
    .unwrap();
    let res = app
        .post_json(
            &format!("/api/v1/tasks/runs/{id}/retry"),
            &json!({}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 202);
    let retried: serde_json::Value = res.json().await.unwrap();
    assert_eq!(retried["state"], "queued");
    assert_eq!(retried["attempts"], 0);

    let stats: serde_json::Value = app
        .get_with_token("/api/v1/tasks/stats", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["queued"], 3);
    assert_eq!(stats["dead"], 0);
    assert!(stats["queue_depth"].as_u64().unwrap() >= 3, "{stats}");

    let schedules: serde_json::Value = app
        .get_with_token("/api/v1/tasks/schedules", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    let prune = schedules
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["task_name"] == "prune_expired_data")
        .expect("prune_expired_data is scheduled");
    assert_eq!(
        prune["cron"],
        app.settings.tasks.schedule.prune_expired_data.as_str()
    );
    assert!(prune["next_fire_at"].is_string());
}

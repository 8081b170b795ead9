//! Leases, the reconciler and the scheduler on the injected clock: a run is redelivered when
//! its lease ends (not a timeout later), a worker that loses its lease stops, and lost runs are
//! re-enqueued once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_reads_the_injected_clock_and_collapses_missed_ticks_into_one_run() {
    let mut h = Harness::new(Some("* * * * * *"), |_| {}).await;
    let start: DateTime<Utc> = "2020-01-01T12:00:00.500Z".parse().unwrap();
    let clock = Clock::manual(start);
    let scheduler = tasks::start_background(
        task_queue(&AppState::new(h.app.settings.clone(), clock.clone()).unwrap()),
        h.registry.clone(),
        ProcessRole::Scheduler,
        h.shutdown.child_token(),
    );
    h.handles.extend(scheduler);
    let tick = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    // The first run stands for "now" on the injected clock, not on the system's.
    let first = poll(10, || async {
        let runs = h.scheduled_runs().await;
        (!runs.is_empty()).then_some(runs)
    })
    .await
    .expect("a catch-up run is recorded at start");
    assert_eq!(first[0].scheduled_for, Some(tick("2020-01-01T12:00:00Z")));
    // Ten ticks fall due at once, as after a PostgreSQL outage: one run stands for them all.
    clock.advance(TimeDelta::seconds(10));
    let runs = poll(10, || async {
        let runs = h.scheduled_runs().await;
        runs.iter()
            .any(|r| r.scheduled_for == Some(tick("2020-01-01T12:00:10Z")))
            .then_some(runs)
    })
    .await
    .expect("the latest tick is recorded");
    let ticks: Vec<_> = runs.iter().filter_map(|r| r.scheduled_for).collect();
    assert_eq!(
        ticks,
        vec![tick("2020-01-01T12:00:00Z"), tick("2020-01-01T12:00:10Z")]
    );
    h.stop().await;
}

/// Sets its flag when dropped: tells a test that a job's future was stopped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_releases_its_lease_so_the_run_is_redelivered_at_once() {
    // A visibility timeout far longer than the test may take: only a released lease helps.
    let mut h = Harness::new(None, |s| s.tasks.visibility_timeout_secs = 120).await;
    let first_shutdown = CancellationToken::new();
    let first = tasks::start_background(
        h.instance(),
        h.registry.clone(),
        ProcessRole::Worker,
        first_shutdown.clone(),
    );
    let run = h.enqueue("hang_first").await;
    let running = h.wait_for_state(run.id, TaskState::Running, 10).await;
    first_shutdown.cancel();
    for handle in first {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the worker stops within its shutdown grace")
            .unwrap();
    }
    h.start_kept(ProcessRole::Worker);
    let done = h.wait_for_state(run.id, TaskState::Succeeded, 15).await;
    assert_ne!(done.worker_id, running.worker_id);
    assert_eq!(h.logged(run.id).await, vec![2]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_loses_its_lease_stops_the_job() {
    let mut h = Harness::new(None, |_| {}).await;
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut registry = TaskRegistry::new();
    let flag = stopped.clone();
    registry.register_fn("hold", (), move |_, _| {
        let guard = SetOnDrop(flag.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let registry = Arc::new(registry);
    let instance = h.instance();
    h.handles.extend(tasks::start_background(
        instance.clone(),
        registry.clone(),
        ProcessRole::Worker,
        h.shutdown.child_token(),
    ));
    let run = tasks::enqueue(&instance, &registry, "hold", json!({}))
        .await
        .unwrap();
    h.wait_for_state(run.id, TaskState::Running, 10).await;
    // Another worker took the run over (as after a lease that expired during a stall).
    sqlx::query("UPDATE task_runs SET worker_id = 'another-worker' WHERE id = $1")
        .bind(run.id)
        .execute(&h.db)
        .await
        .unwrap();
    let halted = poll(10, || async {
        stopped
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;
    assert!(halted.is_some(), "the job kept running without its lease");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_found_under_a_live_lease_is_redelivered_when_the_lease_ends_not_a_timeout_later() {
    // The visibility timeout is far longer than the lease left: only waiting for the lease helps.
    let mut h = Harness::new(None, |s| s.tasks.visibility_timeout_secs = 60).await;
    let id = Uuid::now_v7();
    // Another worker holds it for 2 more seconds (it stalled or died after its last heartbeat).
    sqlx::query(
        "INSERT INTO task_runs (id, task_name, state, attempts, max_attempts, worker_id,
                                started_at, lease_expires_at)
         VALUES ($1, $2, 'running', 1, 3, 'stalled-worker', now(), now() + interval '2 seconds')",
    )
    .bind(id)
    .bind(TEST_JOB)
    .execute(&h.db)
    .await
    .unwrap();
    Queue::new(h.instance().redis).push(id).await.unwrap();
    h.start_kept(ProcessRole::Worker);
    let done = h.wait_for_state(id, TaskState::Succeeded, 15).await;
    assert_eq!(done.attempts, 2);
    assert_eq!(h.logged(id).await, vec![2]);
    h.stop().await;
}

/// A queue on a manual clock of its own, sharing the harness's database and key prefix.
fn on_clock(h: &Harness, clock: &Clock) -> Tasks {
    task_queue(&AppState::new(h.app.settings.clone(), clock.clone()).unwrap())
}

#[tokio::test]
async fn a_lease_ends_on_the_injected_clock_not_on_postgresqls() {
    use currency_conversion::tasks::store::{self, Claim};
    let h = Harness::new(None, |s| s.tasks.visibility_timeout_secs = 300).await;
    let clock = Clock::manual(Utc::now());
    let state = on_clock(&h, &clock);
    let run = tasks::enqueue(&state, &h.registry, TEST_JOB, json!({}))
        .await
        .unwrap();
    let claim = |worker: &'static str| {
        let (db, now) = (h.db.clone(), clock.now());
        async move { store::claim(&db, run.id, worker, 300.0, now).await.unwrap() }
    };
    assert!(matches!(claim("worker-a").await, Claim::Claimed(_)));
    assert!(matches!(claim("worker-b").await, Claim::Busy(_)));
    // Worker A stalls. Five minutes later on the clock (no sleeping), its lease has ended.
    clock.advance(TimeDelta::seconds(299));
    assert!(matches!(claim("worker-b").await, Claim::Busy(_)));
    clock.advance(TimeDelta::seconds(2));
    let Claim::Claimed(taken) = claim("worker-b").await else {
        panic!("the expired lease was not taken over");
    };
    assert_eq!(taken.attempts, 2);
    assert_eq!(taken.worker_id.as_deref(), Some("worker-b"));
    // Worker A's late outcome is refused: the run is no longer its.
    let late = store::Attempt {
        id: run.id,
        worker_id: "worker-a",
        attempt: 1,
        duration_ms: 1,
    };
    let recorded = store::finish(&h.db, &late, TaskState::Succeeded, None, None, clock.now())
        .await
        .unwrap();
    assert!(!recorded);
}

#[tokio::test]
async fn runs_lost_by_redis_count_as_overdue_on_the_injected_clock() {
    let h = Harness::new(None, |_| {}).await;
    let clock = Clock::manual(Utc::now());
    let state = on_clock(&h, &clock);
    let queue = Queue::new(state.redis.clone());
    let run = tasks::enqueue(&state, &h.registry, TEST_JOB, json!({}))
        .await
        .unwrap();
    h.delete_redis_keys().await;
    // Just recorded: it may still be on its way to Redis.
    assert_eq!(
        tasks::scheduler::reconcile_once(&state, &queue)
            .await
            .unwrap(),
        0
    );
    // Past the grace period on the clock, without waiting for it.
    clock.advance(TimeDelta::seconds(3));
    assert_eq!(
        tasks::scheduler::reconcile_once(&state, &queue)
            .await
            .unwrap(),
        1
    );
    assert_eq!(queue.present(&[run.id]).await.unwrap(), vec![true]);
    assert_eq!(
        tasks::scheduler::reconcile_once(&state, &queue)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_run_finished_while_the_reconciler_looked_is_not_reenqueued() {
    use currency_conversion::tasks::store::{self, Claim};
    let h = Harness::new(None, |_| {}).await;
    let clock = Clock::manual(Utc::now());
    let state = on_clock(&h, &clock);
    let queue = Queue::new(state.redis.clone());
    queue.ensure_group().await.unwrap();
    let run = tasks::enqueue(&state, &h.registry, TEST_JOB, json!({}))
        .await
        .unwrap();
    clock.advance(TimeDelta::seconds(3));
    // The reconciler reads the overdue runs (workers were busy: this one waited)...
    let overdue = store::overdue(&h.db, clock.now() - TimeDelta::seconds(2), None, 500)
        .await
        .unwrap();
    assert_eq!(overdue, vec![run.id]);
    // ...then a worker takes it, runs it, records it and acknowledges its message...
    let message = queue.next("worker-a", 60_000).await.unwrap().unwrap();
    assert_eq!(message.run_id, Some(run.id));
    let Claim::Claimed(claimed) = store::claim(&h.db, run.id, "worker-a", 60.0, clock.now())
        .await
        .unwrap()
    else {
        panic!("the run was not claimed");
    };
    let attempt = store::Attempt {
        id: run.id,
        worker_id: "worker-a",
        attempt: claimed.attempts,
        duration_ms: 1,
    };
    assert!(
        store::finish(
            &h.db,
            &attempt,
            TaskState::Succeeded,
            None,
            None,
            clock.now()
        )
        .await
        .unwrap()
    );
    queue.ack(&message).await.unwrap();
    // ...and only then does the reconciler ask Redis: gone, but not lost.
    let pushed = tasks::scheduler::reconcile(&state, &queue, &overdue)
        .await
        .unwrap();
    assert_eq!(pushed, 0, "a finished run was enqueued again");
    assert_eq!(queue.depth().await.unwrap().stream, 0);
}

#[tokio::test]
async fn a_clean_first_start_finds_no_runs_that_redis_lost() {
    let h = Harness::new(None, |_| {}).await;
    let clock = Clock::manual(Utc::now());
    let state = on_clock(&h, &clock);
    let queue = Queue::new(state.redis.clone());
    // What the scheduler role does first on a fresh database and key prefix: catch up on every
    // schedule of the real registry, with the reconciler looking from its first tick.
    let mut recorded = 0;
    for schedule in h.app.tasks.schedules() {
        tasks::scheduler::catch_up(&state, &queue, schedule, clock.now())
            .await
            .unwrap();
        recorded += 1;
        assert_eq!(
            tasks::scheduler::reconcile_once(&state, &queue)
                .await
                .unwrap(),
            0
        );
    }
    assert!(recorded > 0);
    // No worker has taken them yet, long past the grace period: waiting, not lost.
    clock.advance(TimeDelta::minutes(10));
    assert_eq!(
        tasks::scheduler::reconcile_once(&state, &queue)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_over_by_the_reconciler_and_its_late_outcome_refused() {
    use currency_conversion::tasks::store::{self, Claim};
    let h = Harness::new(None, |s| s.tasks.max_attempts = 2).await;
    let clock = Clock::manual(Utc::now());
    let state = on_clock(&h, &clock);
    let queue = Queue::new(state.redis.clone());
    let run = tasks::enqueue(&state, &h.registry, TEST_JOB, json!({}))
        .await
        .unwrap();
    let claim = |worker: &'static str| {
        let (db, now) = (h.db.clone(), clock.now());
        async move { store::claim(&db, run.id, worker, 15.0, now).await.unwrap() }
    };
    assert!(matches!(claim("worker-a").await, Claim::Claimed(_)));
    // Worker A lost PostgreSQL: its lease is not renewed. Within it (and its margin), nothing.
    clock.advance(TimeDelta::seconds(16));
    assert_eq!(
        tasks::scheduler::take_over_lapsed(&state, &queue)
            .await
            .unwrap(),
        0
    );
    assert_eq!(h.run(run.id).await.state, TaskState::Running);
    clock.advance(TimeDelta::seconds(2));
    assert_eq!(
        tasks::scheduler::take_over_lapsed(&state, &queue)
            .await
            .unwrap(),
        1
    );
    let taken = h.run(run.id).await;
    assert_eq!(taken.state, TaskState::Retrying);
    assert!(
        taken.next_attempt_at.is_some_and(|due| due <= clock.now()),
        "due at once"
    );
    // Enqueued again: it does not wait for Redis to redeliver worker A's message.
    assert_eq!(queue.present(&[run.id]).await.unwrap(), vec![true]);
    // Worker A's outcome, arriving late, is refused: the run is no longer its.
    let late = store::Attempt {
        id: run.id,
        worker_id: "worker-a",
        attempt: 1,
        duration_ms: 1,
    };
    let recorded = store::finish(&h.db, &late, TaskState::Succeeded, None, None, clock.now())
        .await
        .unwrap();
    assert!(!recorded);
    // Worker B takes attempt 2, the last, and loses PostgreSQL too: the run is dead, not retried.
    let Claim::Claimed(second) = claim("worker-b").await else {
        panic!("the run taken over was not claimable");
    };
    assert_eq!(second.attempts, 2);
    clock.advance(TimeDelta::seconds(18));
    assert_eq!(
        tasks::scheduler::take_over_lapsed(&state, &queue)
            .await
            .unwrap(),
        0
    );
    let dead = h.run(run.id).await;
    assert_eq!(dead.state, TaskState::Dead);
    assert!(
        dead.last_error
            .unwrap_or_default()
            .contains("worker lost during the last attempt")
    );
}

//! The `fetch_rates` job against a failing or unreachable provider, and workers across a
//! PostgreSQL outage.

use super::*;

/// A harness whose worker fetches rates from `provider_url` only (no fallback), two attempts
/// per run and per provider.
async fn fetching_from(provider_url: &str) -> Harness {
    let mut h = Harness::new(None, |s| {
        s.tasks.max_attempts = 2;
        s.rates.provider_url = Some(provider_url.to_owned().parse().unwrap());
        s.rates.fallbacks = Vec::new();
        s.rates.max_attempts = 2;
        s.rates.backoff_base_ms = 1;
    })
    .await;
    let instance = AppState::new(h.app.settings.clone(), Clock::system()).unwrap();
    let rates = currency_conversion::rates::Rates::of(&instance);
    let webhooks = currency_conversion::webhooks::Webhooks::new(
        instance.db.clone(),
        instance.redis.clone(),
        instance.clock.clone(),
        &instance.settings.webhooks,
        h.app.idempotency_keys(),
    )
    .unwrap();
    let conversions = currency_conversion::conversions::Conversions::new(
        &rates,
        instance.settings.conversions.clone(),
    );
    let quotes = currency_conversion::quotes::Quotes::new(
        &rates,
        instance.settings.quotes.clone(),
        h.app.idempotency_keys(),
    );
    h.registry = Arc::new(
        currency_conversion::jobs::registry(
            &task_queue(&instance),
            &rates,
            &conversions,
            &quotes,
            &webhooks,
            currency_conversion::retention::Retention::new(
                instance.db.clone(),
                instance.clock.clone(),
                &instance.settings,
            ),
        )
        .unwrap(),
    );
    currency_conversion::currencies::service::seed_defaults(&h.db, Utc::now())
        .await
        .unwrap();
    h.start_kept(ProcessRole::Worker);
    h
}

/// A provider that answers every request, 200 with an HTML page instead of rates: broken, not
/// down. Returns its base URL.
fn provider_answering_html() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = "<html>maintenance</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

async fn stored_quotes(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rate_quotes")
        .fetch_one(&h.db)
        .await
        .unwrap()
}

/// Scenario 5: the provider fails every attempt (it answers, with something that is not rates)
/// → the fetch retries with backoff, then ends `dead` with the error visible, and nothing is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_every_attempt_ends_dead_with_its_error() {
    let mut h = fetching_from(&provider_answering_html()).await;
    let run = tasks::enqueue(&h.instance(), &h.registry, "fetch_rates", json!({}))
        .await
        .unwrap();
    let dead = h.wait_for_state(run.id, TaskState::Dead, 30).await;
    assert_eq!(dead.attempts, 2);
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.contains("fetching rates") && error.contains("malformed"),
        "{error}"
    );
    assert_eq!(stored_quotes(&h).await, 0);
    h.stop().await;
}

/// An unreachable provider is an outage, not a broken job: the run ends after one attempt (the
/// client retried inside it; the next tick is the next try) instead of retrying into `dead`
/// every cycle, and nothing is stored, so the rates go stale where the monitor shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_an_outage_not_a_dead_run() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h = fetching_from(&format!("http://127.0.0.1:{closed}")).await;
    let run = tasks::enqueue(&h.instance(), &h.registry, "fetch_rates", json!({}))
        .await
        .unwrap();
    let done = h.wait_for_state(run.id, TaskState::Succeeded, 30).await;
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_error, None);
    assert_eq!(stored_quotes(&h).await, 0);
    h.stop().await;
}

/// Scenario 4: PostgreSQL goes away and comes back (connections cut through a proxy) → the
/// workers recover on their own and run what was queued meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_recover_when_postgres_comes_back() {
    let mut h = Harness::new(None, |_| {}).await;
    let pg = TcpProxy::start("127.0.0.1:5432".into()).await;
    let mut settings = h.app.settings.clone();
    let db_name = h.app.db_name.clone();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:{}/{db_name}",
        pg.port
    ));
    settings.database.acquire_timeout_ms = 500;
    let through_proxy = task_queue(&AppState::new(settings, Clock::system()).unwrap());
    let handles = tasks::start_background(
        through_proxy,
        h.registry.clone(),
        ProcessRole::Worker,
        h.shutdown.child_token(),
    );
    h.handles.extend(handles);
    let before = h.enqueue("ok").await;
    h.wait_for_state(before.id, TaskState::Succeeded, 20).await;

    pg.cut();
    let during = h.enqueue("ok").await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage itself, not a wait for an outcome
    assert_ne!(h.run(during.id).await.state, TaskState::Succeeded);
    pg.restore();
    h.wait_for_state(during.id, TaskState::Succeeded, 30).await;
    assert_eq!(h.logged(during.id).await, vec![1]);
    h.stop().await;
}

/// A worker that loses PostgreSQL mid-job cannot renew its lease, so it stops the job when the
/// lease ends; once PostgreSQL is back the reconciler takes the run over and it is tried again,
/// and the run of the same task queued behind it runs too. This takes a few leases (2 s here),
/// not the visibility timeout (300 s here) that an unrenewed run used to wait out. The bound is
/// for liveness only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_worker_lost_postgres_is_taken_over_once_its_lease_lapses() {
    let mut h = Harness::new(None, |s| s.tasks.visibility_timeout_secs = 300).await;
    let pg = TcpProxy::start("127.0.0.1:5432".into()).await;
    let mut settings = h.app.settings.clone();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        pg.port, h.app.db_name
    ));
    settings.database.acquire_timeout_ms = 500;
    let through_proxy = task_queue(&AppState::new(settings, Clock::system()).unwrap());
    let handles = tasks::start_background(
        through_proxy,
        h.registry.clone(),
        ProcessRole::All,
        h.shutdown.child_token(),
    );
    h.handles.extend(handles);
    // Attempt 1 hangs (until its worker stops it); later attempts finish.
    let stuck = h.enqueue("hang_first").await;
    h.wait_for_state(stuck.id, TaskState::Running, 20).await;

    pg.cut();
    let behind = h.enqueue("ok").await;
    tokio::time::sleep(Duration::from_secs(5)).await; // the outage itself, not a wait for an outcome
    pg.restore();

    let taken_over = h.wait_for_state(stuck.id, TaskState::Succeeded, 60).await;
    assert_eq!(taken_over.attempts, 2);
    assert_eq!(h.logged(stuck.id).await, vec![2], "attempt 1 was stopped");
    h.wait_for_state(behind.id, TaskState::Succeeded, 60).await;
    assert_eq!(h.logged(behind.id).await, vec![1]);
    h.stop().await;
}

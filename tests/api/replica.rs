//! The read replica (`database.replica_url`): which reads go to it, that a conversion always
//! finds its own write, and that a lagging or unreachable replica sends those reads back to
//! the primary. Against a real streaming replica (`scripts/replica`) whose replay the tests
//! pause (`pg_wal_replay_pause()`) to tell which server answered; see `helpers/replica.rs` for
//! why pausing the shared replica cannot break other tests.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{
    ReplicaLock, TestApp, poll, spawn_app, spawn_app_with_rates, spawn_app_with_replica,
};

async fn convert(app: &TestApp, token: &str) -> String {
    let res = app.convert(token, "EUR", "USD", "10.00").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// The ids on the first page of the history the partner of `token` sees.
async fn history_ids(app: &TestApp, token: &str) -> Vec<String> {
    let res = app.history(token, "limit=200").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn readiness(app: &TestApp) -> Value {
    let res = app.get("/health/ready").await;
    assert_eq!(
        res.status(),
        200,
        "the replica's state never fails readiness"
    );
    res.json().await.unwrap()
}

/// Waits until the app has seen the replica up (its copy of the database exists and is
/// within the lag bound).
async fn replica_up(app: &TestApp) {
    poll(Duration::from_secs(30), "the replica to be up", || async {
        readiness(app).await["checks"]["replica"] == "up"
    })
    .await;
}

/// `name`'s value in the app's `/metrics`, if it is there.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Without a replica, the reads that may be a moment behind go to the primary on connections
/// of their own: read-only sessions that plan generically (on the partitioned `conversions` a
/// custom plan re-plans every partition for every page, docs/scaling.md).
#[tokio::test]
async fn without_a_replica_history_reads_the_primary_on_read_only_sessions_that_plan_generically() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let id = convert(&app, &partner.token).await;
    assert_eq!(history_ids(&app, &partner.token).await, vec![id]);
    let read_sessions: Vec<String> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'currency-conversion reads'",
    )
    .bind(&app.db_name)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        read_sessions.iter().any(|q| q.contains("FROM conversions")),
        "the history page was not read on a read session: {read_sessions:?}"
    );

    let reads = currency_conversion::db::primary_read_pool(&app.settings.database).unwrap();
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&reads)
        .await
        .unwrap();
    assert_eq!(mode, "force_generic_plan");
    let refused = sqlx::query("DELETE FROM conversions")
        .execute(&reads)
        .await
        .unwrap_err();
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("25006"),
        "a read session refuses writes: {refused}"
    );
}

#[tokio::test]
async fn history_reads_the_replica_while_a_conversion_reads_its_own_write_on_the_primary() {
    let app = spawn_app_with_replica(3600).await;
    let partner = app.partner().await;
    let lock = ReplicaLock::take(&app).await;
    let before = convert(&app, &partner.token).await;
    lock.caught_up(&app).await;
    replica_up(&app).await;
    assert_eq!(
        history_ids(&app, &partner.token).await,
        std::slice::from_ref(&before)
    );

    lock.pause().await;
    let after = convert(&app, &partner.token).await;
    // Read-your-writes: the conversion just made is found at once (the primary answers).
    let res = app
        .get_conversion(&partner.token, &Value::from(after.clone()))
        .await;
    assert_eq!(res.status(), 200);
    // The history, its export and the summary read the replica, whose replay is paused (within
    // the hour's lag bound): the new conversion is not there yet.
    assert_eq!(
        history_ids(&app, &partner.token).await,
        std::slice::from_ref(&before)
    );
    let csv = app
        .get_with_token("/api/v1/conversions?format=csv", &partner.token)
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains(&before) && !csv.contains(&after), "{csv}");
    let summary: Value = app
        .get_with_token(
            "/api/v1/conversions/summary?group_by=currency_pair",
            &partner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["data"][0]["count"], 1, "{summary}");
    assert_eq!(readiness(&app).await["checks"]["replica"], "up");

    lock.resume().await;
    lock.caught_up(&app).await;
    let mut both = history_ids(&app, &partner.token).await;
    both.sort();
    let mut expected = vec![before, after];
    expected.sort();
    assert_eq!(both, expected);
}

#[tokio::test]
async fn a_lagging_replica_sends_history_to_the_primary_until_it_catches_up() {
    let app = spawn_app_with_replica(1).await;
    let partner = app.partner().await;
    let lock = ReplicaLock::take(&app).await;
    lock.caught_up(&app).await;
    replica_up(&app).await;
    assert_eq!(metric(&app, "db_replica_up").await, Some(1.0));

    lock.pause().await;
    let id = convert(&app, &partner.token).await;
    // Replay stays paused: the conversion shows in the history only once the replica is more
    // than a second behind and the history is read from the primary.
    poll(
        Duration::from_secs(30),
        "the history to be read from the primary",
        || async { history_ids(&app, &partner.token).await.contains(&id) },
    )
    .await;
    let ready = readiness(&app).await;
    assert_eq!(ready["checks"]["replica"], "lagging", "{ready}");
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(metric(&app, "db_replica_up").await, Some(0.0));
    assert!(
        metric(&app, "db_replica_fallbacks_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        !crate::helpers::logged_lines_with("read replica unusable").is_empty(),
        "the episode is logged"
    );

    lock.resume().await;
    lock.caught_up(&app).await;
    replica_up(&app).await;
    assert_eq!(metric(&app, "db_replica_up").await, Some(1.0));
    assert!(history_ids(&app, &partner.token).await.contains(&id));
}

#[tokio::test]
async fn history_and_readiness_carry_on_when_the_replica_is_down() {
    // A port nobody listens on: the replica is down from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with_rates(|s| {
        s.database.replica_url =
            SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/gone"));
    })
    .await;
    let partner = app.partner().await;
    let id = convert(&app, &partner.token).await;
    assert_eq!(history_ids(&app, &partner.token).await, [id]);
    let ready = readiness(&app).await;
    assert_eq!(ready["checks"]["replica"], "down", "{ready}");
    assert_eq!(ready["checks"]["postgres"], "up", "{ready}");
    assert_eq!(ready["status"], "ok", "{ready}");
    assert!(
        metric(&app, "db_replica_fallbacks_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[tokio::test]
async fn without_a_replica_readiness_says_none() {
    let app = spawn_app().await;
    assert_eq!(readiness(&app).await["checks"]["replica"], "none");
    assert_eq!(metric(&app, "db_replica_fallbacks_total").await, None);
}

//! `prune_expired_data`: each kind of record is deleted only after its own retention, in
//! batches, and what must stay (pending deliveries, quotes conversions were made on, the
//! monitor's recent failures, unfinished runs) stays.

use chrono::Duration;
use currency_conversion::retention::{self, Retention};
use serde_json::json;

use crate::helpers::*;

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Finished runs of every final state, `n` of each, finished now, plus one queued run.
async fn finished_runs(app: &TestApp, n: i64) {
    let now = app.clock.now();
    for state in ["succeeded", "failed", "dead"] {
        sqlx::query(
            "INSERT INTO task_runs (id, task_name, args, state, attempts, max_attempts,
                                    queued_at, started_at, finished_at)
             SELECT gen_random_uuid(), 'fetch_rates', '{}', $1, 1, 5, $2, $2, $2
             FROM generate_series(1, $3)",
        )
        .bind(state)
        .bind(now)
        .bind(n)
        .execute(&app.db)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO task_runs (id, task_name, args, state, max_attempts, queued_at, next_attempt_at)
         VALUES (gen_random_uuid(), 'fetch_rates', '{}', 'queued', 5, $1, $1)",
    )
    .bind(now)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn prune_expired_data_deletes_each_kind_only_after_its_retention() {
    // Batches of two: every kind below has more rows than that, so the batching loop is what
    // gets them all.
    let app = spawn_app_with_rates(|s| {
        s.tasks.prune_batch_size = 2;
        s.tasks.retention_days = 30;
        s.webhooks.retention_days = 30;
        s.quotes.retention_days = 30;
        s.conversions.idempotency_ttl_secs = 86_400;
        s.conversions.idempotency_retention_secs = 86_400;
        s.auth.session_retention_days = 7;
    })
    .await;
    let retention = Retention::new(app.db.clone(), app.clock.clone(), &app.settings);
    let partner = app.partner().await;
    app.register_webhook(
        &partner.token,
        "http://127.0.0.1:9/hook",
        json!(["conversion.created"]),
    )
    .await;
    for i in 0..5 {
        let body = json!({"from": "EUR", "to": "USD", "amount": "10"});
        let res = app
            .convert_idempotently(&partner.token, &body, &format!("key-{i}"))
            .await;
        assert_eq!(res.status(), 201);
    }
    let indicative: Vec<_> = futures_util::future::join_all(
        (0..3).map(|_| app.quoted(&partner.token, "EUR", "GBP", None, "none")),
    )
    .await;
    let used = app
        .quoted(&partner.token, "EUR", "USD", Some("10"), "five_minutes")
        .await;
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "10", &used["id"])
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let unannounced = app
        .quoted(&partner.token, "EUR", "JPY", Some("10"), "hour")
        .await;
    finished_runs(&app, 12).await;
    // Five of the six conversions' events delivered, one still being retried.
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'delivered', next_attempt_at = NULL,
                delivered_at = created_at
         WHERE id IN (SELECT id FROM webhook_deliveries ORDER BY id LIMIT 5)",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let webhook_events = "SELECT count(*) FROM webhook_events";
    let deliveries = "SELECT count(*) FROM webhook_deliveries";
    let keys = "SELECT count(*) FROM idempotency_keys";
    let quotes = "SELECT count(*) FROM quotes";
    let sessions = "SELECT count(*) FROM refresh_tokens";
    let runs = |state: &str| format!("SELECT count(*) FROM task_runs WHERE state = '{state}'");
    assert_eq!(count(&app, webhook_events).await, 6, "one per conversion");
    assert_eq!(count(&app, keys).await, 5);
    assert_eq!(count(&app, quotes).await, 5);
    let sessions_before = count(&app, sessions).await;
    assert!(sessions_before >= 1);

    // A day and an hour on, the keys are past their TTL but within their retention.
    app.clock.advance(Duration::hours(25));
    assert_eq!(
        retention::prune(&retention).await.unwrap(),
        retention::Pruned::default()
    );
    assert_eq!(count(&app, keys).await, 5);

    // Two days and a minute on, they go; nothing else is old enough yet.
    app.clock
        .advance(Duration::hours(23) + Duration::minutes(1));
    let pruned = retention::prune(&retention).await.unwrap();
    assert_eq!(
        pruned,
        retention::Pruned {
            idempotency_keys: 5,
            ..Default::default()
        }
    );
    assert_eq!(count(&app, keys).await, 0);

    // 31 days on: runs, events and quotes are past their 30 days.
    app.clock.advance(Duration::days(29));
    let pruned = retention::prune(&retention).await.unwrap();
    assert_eq!(count(&app, &runs("succeeded")).await, 0);
    assert_eq!(
        count(&app, &runs("failed")).await,
        10,
        "the monitor's recent failures stay"
    );
    assert_eq!(count(&app, &runs("dead")).await, 10);
    assert_eq!(
        count(&app, &runs("queued")).await,
        1,
        "unfinished runs stay"
    );
    assert_eq!(pruned.task_runs, 12 + 2 + 2);
    assert_eq!(
        count(&app, webhook_events).await,
        1,
        "the event with a pending delivery stays"
    );
    assert_eq!(count(&app, deliveries).await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
        )
        .await,
        1
    );
    let kept: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM quotes ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let id = |q: &serde_json::Value| q["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let mut expected = vec![id(&used), id(&unannounced)];
    expected.sort();
    assert_eq!(
        kept, expected,
        "a quote a conversion was made on, and a lock whose expiry is not announced yet, stay"
    );
    assert!(indicative.iter().all(|q| !kept.contains(&id(q))));
    assert_eq!(pruned.quotes, 3);
    assert_eq!(pruned.sessions, 0, "refresh tokens live 30 days, plus 7");
    assert_eq!(count(&app, sessions).await, sessions_before);
    assert_eq!(
        app.stored_conversions().await,
        6,
        "conversions are never pruned"
    );

    // 38 days on, expired refresh tokens go too.
    app.clock.advance(Duration::days(7));
    let pruned = retention::prune(&retention).await.unwrap();
    assert_eq!(pruned.sessions, u64::try_from(sessions_before).unwrap());
    assert_eq!(count(&app, sessions).await, 0);
}

#[tokio::test]
async fn prune_expired_data_is_the_scheduled_retention_job() {
    let app = spawn_app().await;
    assert!(app.tasks.contains("prune_expired_data"));
    assert!(
        app.tasks
            .schedules()
            .any(|s| s.task_name == "prune_expired_data"
                && s.expression == app.settings.tasks.schedule.prune_expired_data.as_str())
    );
    assert!(!app.tasks.contains("prune"));
}

#[tokio::test]
async fn rates_sources_fetch_records_are_pruned_after_their_retention() {
    let app = spawn_app().await;
    let retention = Retention::new(app.db.clone(), app.clock.clone(), &app.settings);
    let now = app.clock.now();
    for days_ago in [0, 6, 8, 30] {
        sqlx::query(
            "INSERT INTO rate_source_fetches (source, fetched_at, ok, latency_ms, breaker)
             VALUES ('a', $1, true, 12, 'closed')",
        )
        .bind(now - Duration::days(days_ago))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let pruned = retention::prune(&retention).await.unwrap();
    assert_eq!(pruned.source_fetches, 2, "older than 7 days");
    assert_eq!(
        count(&app, "SELECT count(*) FROM rate_source_fetches").await,
        2
    );
}

//! Test pings are limited per endpoint (`webhooks.test_pings_per_minute`, 5 in the settings the
//! tests start from): each ping makes a request to a URL the partner chose.

use super::*;

/// Pings `endpoint` `n` times at once; returns the statuses.
async fn ping_in_parallel(app: &TestApp, token: &str, endpoint: &str, n: usize) -> Vec<u16> {
    futures_util::future::join_all((0..n).map(|_| {
        app.post_json_owned(
            format!("/api/v1/webhooks/{endpoint}/test"),
            token.to_owned(),
        )
    }))
    .await
}

async fn ping_deliveries(app: &TestApp, endpoint: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
         WHERE d.endpoint_id = $1::uuid AND e.event_type = 'ping'",
    )
    .bind(endpoint)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_endpoint_takes_a_minutes_worth_of_pings_then_429_with_retry_after() {
    let app = spawn_app_with(|_| {}).await;
    let partner = app.partner().await;
    let receiver = Receiver::start();
    let first = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let second = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let (first, second) = (id_of(&first), id_of(&second));
    assert_eq!(app.settings.webhooks.test_pings_per_minute, 5);

    for _ in 0..5 {
        assert_eq!(app.ping_webhook(&partner.token, first).await.status(), 202);
    }
    let refused = app.ping_webhook(&partner.token, first).await;
    let retry_after = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = assert_problem(refused, 429, "/problems/webhook-test-limit").await;
    // 5 a minute: the next one is allowed an emission interval (12 s) later.
    assert_eq!(retry_after, "12");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("5 times a minute")
    );
    assert_eq!(ping_deliveries(&app, first).await, 5);

    // The limit is the endpoint's: the partner's other endpoint still takes pings.
    assert_eq!(app.ping_webhook(&partner.token, second).await.status(), 202);
    // Another partner is told the endpoint does not exist, not that it is busy.
    let other = app.partner().await;
    assert_problem(
        app.ping_webhook(&other.token, first).await,
        404,
        "/problems/not-found",
    )
    .await;

    // One interval on, exactly one more.
    app.clock.advance(TimeDelta::seconds(12));
    assert_eq!(app.ping_webhook(&partner.token, first).await.status(), 202);
    assert_eq!(app.ping_webhook(&partner.token, first).await.status(), 429);
    assert_eq!(ping_deliveries(&app, first).await, 6);
}

#[tokio::test]
async fn pings_sent_at_once_get_exactly_the_limit_through() {
    let app = spawn_app_with(|s| s.webhooks.test_pings_per_minute = 3).await;
    let partner = app.partner().await;
    let receiver = Receiver::start();
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let endpoint = id_of(&endpoint);

    let statuses = ping_in_parallel(&app, &partner.token, endpoint, 20).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        17,
        "{statuses:?}"
    );
    assert_eq!(ping_deliveries(&app, endpoint).await, 3);
}

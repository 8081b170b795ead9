//! Usage per partner and day: every answered request counted once, across instances, written
//! within seconds; conversions and volume per currency; who may read it; retention.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with_rates};

/// The partner's usage as an admin reads it, polled until `done` holds (counts are written
/// about every second; the deadline is only a safety net).
async fn usage_when(
    app: &TestApp,
    admin: &str,
    partner: uuid::Uuid,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let res = app
            .get_with_token(&format!("/api/v1/usage?partner_id={partner}"), admin)
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        if done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage never got there: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_answer_is_counted_once_by_class_and_status_across_instances() {
    let app = spawn_app_with_rates(|s| s.limits.requests_per_minute = 6).await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let get = |base: &str, path: &str| {
        let req = app
            .client
            .get(format!("{base}{path}"))
            .bearer_auth(&partner.token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(&app.address, "/api/v1/me").await, 200);
    assert_eq!(get(&other, "/api/v1/me").await, 200);
    assert_eq!(
        get(
            &other,
            "/api/v1/conversions/01a22281-9219-700e-89df-07d6d362fbe9"
        )
        .await,
        404
    );
    for amount in ["100.00", "50.00"] {
        let res = app.convert(&partner.token, "EUR", "USD", amount).await;
        assert_eq!(res.status(), 201);
    }
    assert_eq!(get(&other, "/api/v1/me").await, 200);
    assert_eq!(get(&app.address, "/api/v1/me").await, 429);

    let usage = usage_when(&app, &admin.token, partner.id, |u| {
        u["days"][0]["total_requests"] == 7
    })
    .await;
    let today = app.clock.now().date_naive().to_string();
    assert_eq!(usage["partner_id"], partner.id.to_string());
    assert_eq!(usage["to"], today);
    assert_eq!(usage["days"].as_array().unwrap().len(), 1);
    let day = &usage["days"][0];
    assert_eq!(day["day"], today);
    assert_eq!(
        day["requests"],
        json!({
            "read": {"2xx": 3, "3xx": 0, "4xx": 2, "5xx": 0},
            "write": {"2xx": 2, "3xx": 0, "4xx": 0, "5xx": 0},
        })
    );
    assert_eq!(day["rate_limited"], 1);
    assert_eq!(
        day["conversions"],
        json!([{"currency": "EUR", "conversions": 2, "volume": "150.00"}])
    );
    // The admin's own reads are not a partner's usage: still seven.
    let again = usage_when(&app, &admin.token, partner.id, |_| true).await;
    assert_eq!(again["days"][0]["total_requests"], 7);
}

#[tokio::test]
async fn a_partner_reads_its_own_usage_only_and_ranges_are_checked() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let res = app.get_with_token("/api/v1/usage", &partner.token).await;
    assert_eq!(res.status(), 200);
    let own: Value = res.json().await.unwrap();
    assert_eq!(own["partner_id"], partner.id.to_string());
    let res = app
        .get_with_token(
            &format!("/api/v1/usage?partner_id={}", other.id),
            &partner.token,
        )
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
    let res = app.get_with_token("/api/v1/usage", &admin.token).await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .get_with_token(
            "/api/v1/usage?from=2026-12-02&to=2026-12-01",
            &partner.token,
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .get_with_token(
            "/api/v1/usage?from=2024-01-01&to=2026-12-01",
            &partner.token,
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .get_with_token("/api/v1/usage?from=yesterday", &partner.token)
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
}

#[tokio::test]
async fn usage_older_than_the_retention_is_deleted() {
    let app = spawn_app().await;
    let partner = uuid::Uuid::new_v4();
    let today = app.clock.now().date_naive();
    for age in [0u64, 10, 11] {
        sqlx::query(
            "INSERT INTO partner_usage_daily
                 (partner_id, day, class, status_class, requests, rate_limited)
             VALUES ($1, $2, 'read', 2, 1, 0)",
        )
        .bind(partner)
        .bind(today - chrono::Days::new(age))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let deleted = currency_conversion::access::usage::prune(&app.db, app.clock.now(), 10)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let kept: Vec<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT day FROM partner_usage_daily ORDER BY day")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(kept, [today - chrono::Days::new(10), today]);
}

/// An instance stopped the way a service manager stops it (SIGTERM) writes the counts it still
/// buffers before it exits: the real binary, stopped right after 2.5 s of requests from 16
/// clients. Its HTTP workers, and the runtimes the pool's connections were opened on,
/// are gone by then, so the last write must not depend on them.
#[tokio::test]
async fn a_stopping_instance_writes_its_last_counts_before_it_exits() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let port = crate::helpers::free_port();
    let mut server = crate::helpers::Server::start_with(
        &app,
        port,
        &[("CCS__USAGE__FLUSH_INTERVAL_MS", "1000")],
    )
    .await;
    // 16 clients at once, each request read from PostgreSQL (a conversion looked up by id,
    // not found), so that the pool opens connections on the HTTP workers' runtimes.
    let clients = (0..16).map(|_| {
        let (client, token) = (app.client.clone(), partner.token.clone());
        tokio::spawn(async move {
            let mut sent = 0_i64;
            let until = std::time::Instant::now() + std::time::Duration::from_millis(2500);
            while std::time::Instant::now() < until {
                sent += 1;
                let res = client
                    .get(format!(
                        "http://127.0.0.1:{port}/api/v1/me?{}",
                        uuid::Uuid::now_v7()
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
            sent
        })
    });
    let mut sent = 0;
    for client in futures_util::future::join_all(clients).await {
        sent += client.unwrap();
    }
    let status = server.stop().await;
    assert!(status.success(), "{status}");
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(requests), 0)::int8 FROM partner_usage_daily WHERE partner_id = $1",
    )
    .bind(partner.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(counted, sent);
}

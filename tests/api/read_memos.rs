//! Reads served from each process's memory (`/me`, `/currencies`, latest rates, `/convert`
//! with the partner's markup): no database round trip on a warm memo, and still current: a
//! change made through one instance is seen on another within the memo's second, revocation
//! included.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, spawn_app_with_rates};
use crate::proxy::TcpProxy;

/// How long a change may take to reach another instance: the memo's one-second check, plus
/// slack for a loaded test machine. Far below `memo::MAX_AGE` (10 s), which is when a memo
/// that never heard of the change would give up its entry.
const REACH: Duration = Duration::from_secs(3);

/// Polls `probe` against `instance` until `done` says its answer shows the change, failing
/// after [`REACH`].
async fn seen_within_reach(
    app: &TestApp,
    instance: &str,
    path: &str,
    token: &str,
    done: impl Fn(u16, &Value) -> bool,
) {
    seen_within(REACH, app, instance, path, token, done).await;
}

/// [`seen_within_reach`] with a deadline of its own.
async fn seen_within(
    reach: Duration,
    app: &TestApp,
    instance: &str,
    path: &str,
    token: &str,
    done: impl Fn(u16, &Value) -> bool,
) {
    let deadline = Instant::now() + reach;
    loop {
        let res = app
            .client
            .get(format!("{instance}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if done(status, &body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} on the other instance still answers {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_ok(app: &TestApp, instance: &str, path: &str, token: &str) -> Value {
    let res = app
        .client
        .get(format!("{instance}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_profile_changed_on_one_instance_is_shown_by_another_within_a_second() {
    let app = spawn_app_with(|_| {}).await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    // The other instance memoises the profile.
    for _ in 0..2 {
        let me = get_ok(&app, &other, "/api/v1/me", &partner.token).await;
        assert_eq!(me["display_name"], "Test user");
    }
    let res = app
        .patch_json(
            &format!("/api/v1/partners/{}", partner.id),
            &json!({"display_name": "Renamed partner"}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    // At once on the instance that made the change.
    let me = get_ok(&app, &app.address, "/api/v1/me", &partner.token).await;
    assert_eq!(me["display_name"], "Renamed partner");
    seen_within_reach(&app, &other, "/api/v1/me", &partner.token, |s, b| {
        s == 200 && b["display_name"] == "Renamed partner"
    })
    .await;
}

#[tokio::test]
async fn a_disabled_partner_is_refused_on_every_instance_within_a_second() {
    let app = spawn_app_with(|_| {}).await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    for _ in 0..2 {
        get_ok(&app, &other, "/api/v1/me", &partner.token).await;
        get_ok(&app, &other, "/api/v1/currencies", &partner.token).await;
    }
    let res = app
        .patch_json(
            &format!("/api/v1/partners/{}", partner.id),
            &json!({"disabled": true}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        401
    );
    for path in ["/api/v1/me", "/api/v1/currencies"] {
        seen_within_reach(&app, &other, path, &partner.token, |s, _| s == 401).await;
    }
}

#[tokio::test]
async fn a_logged_out_token_is_refused_on_every_instance_within_a_second() {
    let app = spawn_app_with(|_| {}).await;
    let other = app.another_instance().await;
    let partner = app.partner().await;
    for _ in 0..2 {
        get_ok(&app, &other, "/api/v1/me", &partner.token).await;
    }
    let res = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": partner.refresh_token}),
            Some(&partner.token),
        )
        .await;
    assert!(res.status().is_success(), "logout: {}", res.status());
    seen_within_reach(&app, &other, "/api/v1/me", &partner.token, |s, _| s == 401).await;
}

#[tokio::test]
async fn a_currency_disabled_on_one_instance_leaves_the_others_list_and_prices_within_a_second() {
    let app = spawn_app_with_rates(|_| {}).await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let listed = |b: &Value| {
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "GBP")
    };
    for _ in 0..2 {
        assert!(listed(
            &get_ok(&app, &other, "/api/v1/currencies", &partner.token).await
        ));
        get_ok(
            &app,
            &other,
            "/api/v1/convert?from=EUR&to=GBP&amount=10.00",
            &partner.token,
        )
        .await;
    }
    let res = app
        .patch_json(
            "/api/v1/currencies/GBP",
            &json!({"enabled": false}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let here = get_ok(&app, &app.address, "/api/v1/currencies", &partner.token).await;
    assert!(
        !listed(&here),
        "still listed on the instance that disabled it"
    );
    seen_within_reach(
        &app,
        &other,
        "/api/v1/currencies",
        &partner.token,
        |s, b| s == 200 && !listed(b),
    )
    .await;
    seen_within_reach(
        &app,
        &other,
        "/api/v1/convert?from=EUR&to=GBP&amount=10.00",
        &partner.token,
        |s, _| s == 422,
    )
    .await;
}

#[tokio::test]
async fn a_markup_set_on_one_instance_prices_on_another_within_a_second() {
    let app = spawn_app_with_rates(|_| {}).await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let path = "/api/v1/convert?from=EUR&to=USD&amount=1000.00";
    for _ in 0..2 {
        let quote = get_ok(&app, &other, path, &partner.token).await;
        assert_eq!(quote["rate"], "1.1", "no markup by default in tests");
    }
    let res = app
        .client
        .put(app.url(&format!("/api/v1/partners/{}/pricing", partner.id)))
        .bearer_auth(&admin.token)
        .json(&json!({"markup_bps": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // 1.1 × (1 − 0.0025)
    let here = get_ok(&app, &app.address, path, &partner.token).await;
    assert_eq!(here["rate"], "1.09725");
    seen_within_reach(&app, &other, path, &partner.token, |s, b| {
        s == 200 && b["rate"] == "1.09725"
    })
    .await;
}

#[tokio::test]
async fn warm_reads_answer_while_postgres_is_cut() {
    let proxy = TcpProxy::start("127.0.0.1:5432".into()).await;
    let port = proxy.port;
    let app = spawn_app_with_rates(|s| {
        let url = s.database.url.expose_secret().to_owned();
        let db = url.rsplit_once('/').unwrap().1.to_owned();
        s.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/{db}"));
        // Short enough that the write after the cut fails fast, long enough for a loaded
        // machine to connect through the proxy while setting up (500 ms was not).
        s.database.acquire_timeout_ms = 2000;
    })
    .await;
    let partner = app.partner().await;
    let paths = [
        "/api/v1/me",
        "/api/v1/currencies",
        "/api/v1/rates/latest?base=USD&symbols=EUR,GBP",
        "/api/v1/convert?from=EUR&to=USD&amount=100.00",
    ];
    for path in paths {
        get_ok(&app, &app.address, path, &partner.token).await;
    }
    proxy.cut();
    // Within the memos' lifetime (a few seconds after the warm-up; nothing changed), every one
    // of these reads is answered from memory. Before the memos, `/me`, `/currencies` and a
    // partner's `/convert` (its markup) each asked PostgreSQL and got 503 here.
    for path in paths {
        get_ok(&app, &app.address, path, &partner.token).await;
    }
    // What is written still needs PostgreSQL, and says so.
    let res = app
        .post_json(
            "/api/v1/conversions",
            &json!({"from": "EUR", "to": "USD", "amount": "1.00"}),
            Some(&partner.token),
        )
        .await;
    assert_eq!(res.status(), 503);
    proxy.restore();
}

#[tokio::test]
async fn without_redis_a_change_still_reaches_the_other_instance_within_a_second() {
    // Redis carries the change counters: while it is away, each memo keeps its entries one
    // second at most and asks PostgreSQL again, so nothing waits for a notice that cannot come.
    let redis_proxy = TcpProxy::start("127.0.0.1:6379".into()).await;
    let port = redis_proxy.port;
    let app = spawn_app_with(|s| {
        s.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let other = app.another_instance().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    for _ in 0..2 {
        get_ok(&app, &other, "/api/v1/me", &partner.token).await;
    }
    redis_proxy.cut();
    let res = app
        .patch_json(
            &format!("/api/v1/partners/{}", partner.id),
            &json!({"display_name": "Renamed without Redis"}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    // Each Redis command now fails only after its timeout: more slack than with Redis up, still
    // below `memo::MAX_AGE`, the bound a memo that ignored the outage would take.
    seen_within(
        Duration::from_secs(6),
        &app,
        &other,
        "/api/v1/me",
        &partner.token,
        |s, b| s == 200 && b["display_name"] == "Renamed without Redis",
    )
    .await;
    redis_proxy.restore();
}

//! Request limits per partner: one budget across instances (Redis), the RateLimit headers on
//! every partner response, 429 beyond the limit, admins' per-partner limits, and Redis killed.

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{PrivateRedis, TestApp, assert_problem, spawn_app_with};

/// `RateLimit: "default";r=<remaining>;t=<reset>` read into (remaining, reset).
fn ratelimit(res: &reqwest::Response) -> (u32, u64) {
    let value = res.headers()["ratelimit"].to_str().unwrap().to_owned();
    let rest = value
        .strip_prefix("\"default\";r=")
        .unwrap_or_else(|| panic!("RateLimit: {value}"));
    let (r, t) = rest.split_once(";t=").unwrap();
    (r.parse().unwrap(), t.parse().unwrap())
}

fn policy(res: &reqwest::Response) -> String {
    res.headers()["ratelimit-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/v1/me` with `token` on the instance at `base`.
async fn me(app: &TestApp, base: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn thirty_requests_at_twenty_a_minute_over_two_instances_get_twenty_answers_and_ten_429s() {
    let app = spawn_app_with(|s| s.limits.requests_per_minute = 20).await;
    let other = app.another_instance().await;
    let partner = app.partner().await;
    let bases = [app.address.clone(), other];
    let responses = join_all((0..30).map(|i| me(&app, &bases[i % 2], &partner.token))).await;
    let mut ok = 0;
    let mut limited = Vec::new();
    for res in responses {
        assert_eq!(policy(&res), "\"default\";q=20;w=60");
        match res.status().as_u16() {
            200 => ok += 1,
            429 => limited.push(res),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited.len()), (20, 10));
    for res in limited {
        assert_eq!(ratelimit(&res).0, 0);
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(retry_after, 3, "one request is back every 60/20 s");
        assert_problem(res, 429, "/problems/too-many-requests").await;
    }
    // Time moves on by one interval: exactly one more, on either instance.
    app.clock.advance(chrono::Duration::seconds(3));
    assert_eq!(me(&app, &bases[1], &partner.token).await.status(), 200);
    assert_eq!(me(&app, &bases[0], &partner.token).await.status(), 429);
}

#[tokio::test]
async fn every_partner_response_says_what_is_left_and_errors_count_too() {
    let app = spawn_app_with(|s| s.limits.requests_per_minute = 5).await;
    let partner = app.partner().await;
    let admin = app.admin().await;
    let res = me(&app, &app.address, &partner.token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(policy(&res), "\"default\";q=5;w=60");
    assert_eq!(ratelimit(&res), (4, 12));
    // A 404 and a 422 are answers too, with the headers.
    let res = app
        .get_with_token(
            "/api/v1/conversions/01a22281-9219-700e-89df-07d6d362fbe9",
            &partner.token,
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(ratelimit(&res).0, 3);
    let res = app
        .post_json(
            "/api/v1/conversions",
            &json!({"from": "EUR"}),
            Some(&partner.token),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(ratelimit(&res).0, 2);
    // Admins and anonymous callers are not limited by a partner's budget.
    for _ in 0..10 {
        let res = me(&app, &app.address, &admin.token).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("ratelimit").is_none());
    }
    assert!(
        app.get("/health/live")
            .await
            .headers()
            .get("ratelimit")
            .is_none()
    );
}

#[tokio::test]
async fn an_admin_sets_a_partners_own_limit_and_can_go_back_to_the_default() {
    let app = spawn_app_with(|s| s.limits.requests_per_minute = 50).await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let path = format!("/api/v1/partners/{}/limits", partner.id);
    let res = app.get_with_token(&path, &admin.token).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["requests_per_minute"], 50);
    assert_eq!(body["is_default"], true);

    let put = |body: serde_json::Value, token: String| {
        let req = app
            .client
            .put(app.url(&path))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    // A partner does not choose its own limit.
    assert_problem(
        put(json!({"requests_per_minute": 5}), partner.token.clone()).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let res = put(json!({"requests_per_minute": 2}), admin.token.clone()).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"partner_id": partner.id, "requests_per_minute": 2, "is_default": false})
    );
    let statuses: Vec<u16> = join_all((0..3).map(|_| me(&app, &app.address, &partner.token)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    // The refused PUT above was a request of the partner's too: one of the two is left.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );

    assert_problem(
        put(json!({"requests_per_minute": 0}), admin.token.clone()).await,
        422,
        "/problems/validation-failed",
    )
    .await;
    let nobody = format!("/api/v1/partners/{}/limits", uuid::Uuid::new_v4());
    assert_problem(
        app.get_with_token(&nobody, &admin.token).await,
        404,
        "/problems/not-found",
    )
    .await;
    let res = put(json!({"requests_per_minute": null}), admin.token.clone()).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["requests_per_minute"], 50);
    assert_eq!(body["is_default"], true);
    let res = me(&app, &app.address, &partner.token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(policy(&res), "\"default\";q=50;w=60");
}

#[tokio::test]
async fn a_machine_token_shares_its_partners_budget() {
    let app = spawn_app_with(|s| s.limits.requests_per_minute = 3).await;
    let partner = app.partner().await;
    let credential = app.create_credential(&partner.token, "machine").await;
    let machine = app.client_token(&credential).await;
    // Creating the credential was the first request of the budget.
    assert_eq!(me(&app, &app.address, &machine).await.status(), 200);
    assert_eq!(me(&app, &app.address, &partner.token).await.status(), 200);
    assert_eq!(me(&app, &app.address, &machine).await.status(), 429);
}

#[tokio::test]
async fn with_redis_killed_each_instance_still_limits_on_its_own() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.limits.requests_per_minute = 4;
        s.redis.url = secrecy::SecretString::from(url);
        s.redis.timeout_ms = 500;
    })
    .await;
    let other = app.another_instance().await;
    let partner = app.partner().await;
    // Two of the budget are spent in Redis before it goes.
    assert_eq!(me(&app, &app.address, &partner.token).await.status(), 200);
    assert_eq!(me(&app, &other, &partner.token).await.status(), 200);
    redis.stop();
    for base in [&app.address, &other] {
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let res = me(&app, base, &partner.token).await;
            assert_eq!(policy(&res), "\"default\";q=4;w=60");
            statuses.push(res.status().as_u16());
        }
        // Each instance now counts on its own: never unlimited, at most the limit each.
        assert_eq!(statuses, [200, 200, 200, 200, 429, 429], "{base}");
    }
}

#[tokio::test]
async fn a_leasing_partner_never_gets_more_than_its_limit_over_two_instances_in_parallel() {
    // Every partner leases here (100 ms holds): its burst is the limit less what 100 ms refills,
    // 59.9 of 60, so 59 whatever how the two instances split the budget between them.
    let app = spawn_app_with(|s| {
        s.limits.requests_per_minute = 60;
        s.limits.lease_from_requests_per_minute = 1;
        s.limits.lease_hold_ms = 100;
    })
    .await;
    let other = app.another_instance().await;
    let partner = app.partner().await;
    let bases = [app.address.clone(), other];
    let responses = join_all((0..120).map(|i| me(&app, &bases[i % 2], &partner.token))).await;
    let mut statuses = std::collections::BTreeMap::new();
    for res in responses {
        *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(200, 59), (429, 61)].into(), "{statuses:?}");
    // A second later one more fits, on either instance, and no more.
    app.clock.advance(chrono::Duration::seconds(1));
    let statuses = join_all((0..6).map(|i| me(&app, &bases[i % 2], &partner.token))).await;
    let ok = statuses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn a_leasing_partner_costs_one_redis_call_per_lease_and_sees_the_same_headers() {
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(|s| {
        // 600 a minute: Redis keeps the budget's key for as long as what was taken takes to
        // refill, in its own real time (100 ms a request here) while the test's clock stands
        // still; at 6000 a minute (10 ms a request) a slow machine outran it mid-test.
        s.limits.requests_per_minute = 600;
        s.limits.lease_from_requests_per_minute = 600;
        s.limits.lease_hold_ms = 100;
        s.redis.url = secrecy::SecretString::from(url);
    })
    .await;
    let partner = app.partner().await;
    // The first request takes a lease of one (and loads the script into this fresh Redis).
    let first = me(&app, &app.address, &partner.token).await;
    assert_eq!(ratelimit(&first).0, 598);
    let scripts_before = script_calls(&redis).await;
    let mut remaining = Vec::new();
    for _ in 1..100 {
        let res = me(&app, &app.address, &partner.token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(policy(&res), "\"default\";q=600;w=60");
        remaining.push(ratelimit(&res).0);
    }
    // Then leases of 2, 4, ... 64 requests: 6 round trips for the next 99 requests (the clock
    // stands still, so no lease runs out of time).
    let calls = script_calls(&redis).await - scripts_before;
    assert_eq!(calls, 6, "Redis scripts run for 99 requests");
    // What is left goes down by one a request, as if each had asked Redis (the burst being
    // 600 less what 100 ms refills: 599). Where it starts depends on whether the first
    // request's Redis key outlived it: the key expires in Redis's real time, 101 ms after a
    // single request, while the test's clock stands still.
    assert!(remaining[0] <= 598, "{remaining:?}");
    assert!(
        remaining.windows(2).all(|w| w[1] + 1 == w[0]),
        "{remaining:?}"
    );
}

/// Lua scripts Redis has run (`EVALSHA`, and `EVAL` the first time a script is not cached).
async fn script_calls(redis: &PrivateRedis) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

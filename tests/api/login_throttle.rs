//! The login throttle under bursts and behind a reverse proxy.

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{TEST_PASSWORD, TestApp, spawn_app_with};

/// Sends all `bodies` to `POST /auth/token` at once (each with its `X-Forwarded-For`, if any)
/// and returns the statuses in order.
async fn burst(app: &TestApp, bodies: Vec<(serde_json::Value, Option<&str>)>) -> Vec<u16> {
    let requests = bodies.into_iter().map(|(body, forwarded_for)| {
        let mut req = app.client.post(app.url("/api/v1/auth/token")).json(&body);
        if let Some(xff) = forwarded_for {
            req = req.header("X-Forwarded-For", xff);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    });
    join_all(requests).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_concurrent_burst_gets_no_more_guesses_than_a_sequence_per_account() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 5).await;
    let partner = app.partner().await;
    let mut bodies: Vec<_> = (0..29)
        .map(|i| {
            (
                json!({"email": partner.email, "password": format!("wrong guess {i}")}),
                None,
            )
        })
        .collect();
    bodies.push((
        json!({"email": partner.email, "password": TEST_PASSWORD}),
        None,
    ));
    let statuses = burst(&app, bodies).await;
    // Exactly five attempts reached the password check; whichever they were, the rest waited.
    assert_eq!(
        count(&statuses, 401) + count(&statuses, 200),
        5,
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 25, "{statuses:?}");
}

#[tokio::test]
async fn a_concurrent_burst_gets_no_more_guesses_than_a_sequence_per_ip() {
    // 5 per account, 20 per IP: thirty different accounts from one address.
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 5).await;
    let bodies = (0..30)
        .map(|i| {
            let body =
                json!({"email": format!("guess{i}@example.com"), "password": "wrong password!"});
            (body, None)
        })
        .collect();
    let statuses = burst(&app, bodies).await;
    assert_eq!(count(&statuses, 401), 20, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 10, "{statuses:?}");
}

/// Failed logins for `n` different accounts, all forwarded for `client`.
fn failures_from(client: &'static str, n: usize) -> Vec<(serde_json::Value, Option<&'static str>)> {
    (0..n)
        .map(|_| {
            let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
            (
                json!({"email": email, "password": "wrong password!"}),
                Some(client),
            )
        })
        .collect()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_ip_limit() {
    // One failure per account, four per IP.
    let app = spawn_app_with(|s| {
        s.auth.max_failed_logins = 1;
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let statuses = burst(&app, failures_from("203.0.113.1", 4)).await;
    assert_eq!(statuses, [401; 4]);
    let statuses = burst(&app, failures_from("203.0.113.1", 1)).await;
    assert_eq!(statuses, [429], "the noisy client is throttled");
    // Another client behind the same proxy is not locked out with it; a forged left-hand
    // entry does not move the noisy client into another bucket either.
    let statuses = burst(&app, failures_from("203.0.113.2", 1)).await;
    assert_eq!(statuses, [401]);
    let statuses = burst(&app, failures_from("198.51.100.9, 203.0.113.1", 1)).await;
    assert_eq!(statuses, [429]);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 1).await;
    let statuses = burst(&app, failures_from("203.0.113.1", 4)).await;
    assert_eq!(statuses, [401; 4]);
    // The socket peer is the bucket: a made-up X-Forwarded-For does not escape it.
    let statuses = burst(&app, failures_from("203.0.113.2", 1)).await;
    assert_eq!(statuses, [429]);
}

#[tokio::test]
async fn with_redis_killed_failed_logins_are_still_throttled_in_process() {
    let mut redis = crate::helpers::PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.auth.max_failed_logins = 3;
        s.redis.url = secrecy::SecretString::from(url);
        s.redis.timeout_ms = 500;
    })
    .await;
    let partner = app.partner().await;
    redis.stop();
    let wrong = |i: usize| {
        (
            json!({"email": partner.email, "password": format!("wrong guess {i}")}),
            None,
        )
    };
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.extend(burst(&app, vec![wrong(i)]).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The right password waits too, as it would with Redis up.
    let right = burst(
        &app,
        vec![(
            json!({"email": partner.email, "password": TEST_PASSWORD}),
            None,
        )],
    )
    .await;
    assert_eq!(right, [429]);
}

/// Fails `email`'s login until the account is locked; returns the 429's problem body.
async fn lock_out(app: &TestApp, email: &str) -> serde_json::Value {
    let wrong = json!({"email": email, "password": "not the password at all"});
    for _ in 0..app.settings.auth.max_failed_logins {
        let res = app.post_json("/api/v1/auth/token", &wrong, None).await;
        assert_eq!(res.status(), 401);
    }
    let right = json!({"email": email, "password": TEST_PASSWORD});
    let res = app.post_json("/api/v1/auth/token", &right, None).await;
    assert_eq!(res.status(), 429, "the account should be locked now");
    res.json().await.unwrap()
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> u16 {
    let body = json!({"email": email, "password": password});
    app.post_json("/api/v1/auth/token", &body, None)
        .await
        .status()
        .as_u16()
}

const NEW_PASSWORD: &str = "a brand new passphrase for the demo";

#[tokio::test]
async fn a_locked_login_says_how_to_unlock_the_account() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let partner = app.partner().await;
    let problem = lock_out(&app, &partner.email).await;
    assert_eq!(problem["type"], "/problems/too-many-requests", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("for this account")
            && detail.contains("currency-conversion user unlock --email")
            && detail.contains("user set-password"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_admin_setting_a_new_password_lifts_the_login_lock() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let partner = app.partner().await;
    let admin = app.admin().await;
    lock_out(&app, &partner.email).await;

    let res = app
        .post_json(
            &format!("/api/v1/partners/{}/password", partner.id),
            &json!({"password": NEW_PASSWORD}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(login_status(&app, &partner.email, NEW_PASSWORD).await, 200);
}

#[tokio::test]
async fn set_password_by_email_lifts_the_login_lock() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let admin = app.admin().await;
    lock_out(&app, &admin.email).await;

    currency_conversion::auth::service::set_password_by_email(
        &app.auth,
        &admin.email,
        NEW_PASSWORD,
    )
    .await
    .unwrap();
    assert_eq!(login_status(&app, &admin.email, NEW_PASSWORD).await, 200);
}

#[tokio::test]
async fn unlock_lifts_the_lock_and_keeps_the_password() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let partner = app.partner().await;
    lock_out(&app, &partner.email).await;

    let unlocked =
        currency_conversion::auth::service::unlock_login(&app.auth, &partner.email.to_uppercase())
            .await
            .unwrap();
    assert!(unlocked);
    assert_eq!(login_status(&app, &partner.email, TEST_PASSWORD).await, 200);
    // A successful login cleared the counter: nothing left to lift.
    let again = currency_conversion::auth::service::unlock_login(&app.auth, &partner.email)
        .await
        .unwrap();
    assert!(!again);
    let unknown =
        currency_conversion::auth::service::unlock_login(&app.auth, "nobody@example.com").await;
    assert!(matches!(
        unknown,
        Err(currency_conversion::auth::error::AuthError::UserNotFound)
    ));
}

#[tokio::test]
async fn a_login_limited_by_its_address_says_so_and_offers_no_account_unlock() {
    // 3 per account, 12 per IP: twelve failures on twelve accounts lock the address only.
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    for i in 0..12 {
        let body = json!({"email": format!("guess{i}@example.com"), "password": "wrong password!"});
        let res = app.post_json("/api/v1/auth/token", &body, None).await;
        assert_eq!(res.status(), 401);
    }
    let body = json!({"email": "fresh@example.com", "password": "wrong password!"});
    let res = app.post_json("/api/v1/auth/token", &body, None).await;
    assert_eq!(res.status(), 429);
    let problem: serde_json::Value = res.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("from this address") && !detail.contains("unlock"),
        "{detail}"
    );
}

//! When a partner's sessions end: a new password, a role change and disabling the account end
//! every access and refresh token issued before, and enabling it again does not revive them.

use serde_json::json;

use secrecy::SecretString;

use crate::helpers::PrivateRedis;
use crate::helpers::{TestApp, TestUser, spawn_app, spawn_app_with};

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_with_token("/api/v1/me", token)
        .await
        .status()
        .as_u16()
}

async fn refresh_status(app: &TestApp, refresh_token: &str) -> u16 {
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh_token}),
        None,
    )
    .await
    .status()
    .as_u16()
}

/// The partner's tokens were in use (so the per-request check has cached them) before the change.
async fn in_use(app: &TestApp, partner: &TestUser) {
    assert_eq!(me_status(app, &partner.token).await, 200);
}

#[tokio::test]
async fn a_password_reset_ends_the_partners_access_and_refresh_tokens_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    in_use(&app, &partner).await;
    let res = app
        .post_json(
            &format!("/api/v1/partners/{}/password", partner.id),
            &json!({"password": "Quartz lantern drifts over 7 bays"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(me_status(&app, &partner.token).await, 401);
    assert_eq!(refresh_status(&app, &partner.refresh_token).await, 401);
    let fresh = app
        .login(&partner.email, "Quartz lantern drifts over 7 bays")
        .await;
    assert_eq!(
        me_status(&app, fresh["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn re_enabling_a_partner_does_not_bring_back_its_old_sessions() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    in_use(&app, &partner).await;
    let path = format!("/api/v1/partners/{}", partner.id);
    let res = app
        .patch_json(&path, &json!({"disabled": true}), &admin.token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(me_status(&app, &partner.token).await, 401);
    let res = app
        .patch_json(&path, &json!({"disabled": false}), &admin.token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(me_status(&app, &partner.token).await, 401);
    assert_eq!(refresh_status(&app, &partner.refresh_token).await, 401);
    // The partner itself is back: a new login works.
    let fresh = app
        .login(&partner.email, crate::helpers::TEST_PASSWORD)
        .await;
    assert_eq!(
        me_status(&app, fresh["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn a_role_change_ends_the_users_sessions() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    // No API changes roles; an operator does it in SQL, and the schema ends the sessions.
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(partner.id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(refresh_status(&app, &partner.refresh_token).await, 401);
    // Renaming is not a reason to end sessions.
    let renamed = app.partner().await;
    sqlx::query("UPDATE users SET display_name = 'Renamed' WHERE id = $1")
        .bind(renamed.id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(refresh_status(&app, &renamed.refresh_token).await, 200);
}

async fn logout_status(app: &TestApp, partner: &TestUser) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/logout",
        &json!({"refresh_token": partner.refresh_token}),
        Some(&partner.token),
    )
    .await
}

async fn app_on(redis: &PrivateRedis) -> TestApp {
    let url = redis.url();
    spawn_app_with(|s| s.redis.url = SecretString::from(url)).await
}

#[tokio::test]
async fn a_logout_outlives_a_flushed_redis() {
    let redis = PrivateRedis::start().await;
    let app = app_on(&redis).await;
    let partner = app.partner().await;
    in_use(&app, &partner).await;
    assert_eq!(logout_status(&app, &partner).await.status(), 204);
    assert_eq!(me_status(&app, &partner.token).await, 401);

    redis.flush_all().await;

    assert_eq!(me_status(&app, &partner.token).await, 401);
    let res = app
        .post_json(
            "/api/v1/conversions",
            &json!({"from": "EUR", "to": "USD", "amount": "1.00"}),
            Some(&partner.token),
        )
        .await;
    assert_eq!(res.status(), 401);
    // A check after the flush cached the user's status again: it still knows the logout.
    assert_eq!(me_status(&app, &partner.token).await, 401);
    assert_eq!(refresh_status(&app, &partner.refresh_token).await, 401);
}

#[tokio::test]
async fn a_logout_while_redis_is_down_succeeds_and_holds_after_redis_returns_empty() {
    let mut redis = PrivateRedis::start().await;
    let app = app_on(&redis).await;
    let partner = app.partner().await;
    let other = app.partner().await;
    in_use(&app, &partner).await;

    redis.stop();
    let res = logout_status(&app, &partner).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    assert_eq!(me_status(&app, &partner.token).await, 401);
    // Another session is not affected.
    assert_eq!(me_status(&app, &other.token).await, 200);

    redis.restart().await;
    // Redis came back empty: the logout is PostgreSQL's to remember.
    assert_eq!(me_status(&app, &partner.token).await, 401);
    assert_eq!(me_status(&app, &other.token).await, 200);
    assert_eq!(me_status(&app, &partner.token).await, 401);
}

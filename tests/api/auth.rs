use serde_json::json;

use crate::helpers::{TEST_PASSWORD, assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn login_returns_oauth_shaped_tokens_and_me_answers() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let tokens = app
        .login(&partner.email.to_uppercase(), TEST_PASSWORD)
        .await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 32);
    let res = app
        .get_with_token("/api/v1/me", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["email"], partner.email);
    assert_eq!(me["role"], "partner");
    assert!(me.get("password_hash").is_none());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let wrong = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"email": partner.email, "password": "nope nope nope"}),
            None,
        )
        .await;
    let wrong = assert_problem(wrong, 401, "/problems/unauthorized").await;
    let unknown = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"email": "ghost@example.com", "password": "nope nope nope"}),
            None,
        )
        .await;
    let unknown = assert_problem(unknown, 401, "/problems/unauthorized").await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn malformed_or_empty_credentials_are_rejected_clearly() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"email": "", "password": ""}),
            None,
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .post_json("/api/v1/auth/token", &json!({"email": "a@b.io"}), None)
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "/problems/malformed-request").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "text/plain")
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "/problems/unsupported-media-type").await;
    let huge = json!({"email": "a@b.io", "password": "x".repeat(100_000)});
    let res = app.post_json("/api/v1/auth/token", &huge, None).await;
    assert_problem(res, 413, "/problems/payload-too-large").await;
}

#[tokio::test]
async fn sql_looking_emails_are_just_wrong_credentials() {
    let app = spawn_app().await;
    app.partner().await;
    for email in [
        "' OR '1'='1",
        "admin@example.com' --",
        "x@y.z'; DROP TABLE users; --",
    ] {
        let res = app
            .post_json(
                "/api/v1/auth/token",
                &json!({"email": email, "password": "' OR '1'='1"}),
                None,
            )
            .await;
        assert_problem(res, 401, "/problems/unauthorized").await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn routes_require_a_valid_bearer_token() {
    let app = spawn_app().await;
    let res = app.get("/api/v1/me").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app.get_with_token("/api/v1/me", "not.a.jwt").await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("Authorization", format!("Bearer {}", "a".repeat(6000)))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "/problems/unauthorized").await;
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let app = spawn_app().await;
    let partner = app.partner().await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": app.settings.auth.issuer, "aud": app.settings.auth.audience,
        "sub": partner.id, "role": "admin", "jti": uuid::Uuid::new_v4(),
        "iat": now, "nbf": now, "exp": now + 600,
    });
    let secret = secrecy::ExposeSecret::expose_secret(&app.settings.auth.jwt_secret)
        .as_bytes()
        .to_vec();
    // Another key.
    let other = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another-key-another-key-another-key!!"),
    )
    .unwrap();
    // The right key but another algorithm.
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    // alg: none.
    let payload = other.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let sign = |c: &serde_json::Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(&secret),
        )
        .unwrap()
    };
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 3600);
    expired["iat"] = json!(now - 4000);
    expired["nbf"] = json!(now - 4000);
    let mut future = claims.clone();
    future["nbf"] = json!(now + 3600);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("someone-else");
    let mut no_jti = claims.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    for (what, token) in [
        ("other key", other),
        ("HS384", hs384),
        ("alg none", none),
        ("expired", sign(&expired)),
        ("not yet valid", sign(&future)),
        ("wrong aud", sign(&wrong_aud)),
        ("wrong iss", sign(&wrong_iss)),
        ("no jti", sign(&no_jti)),
    ] {
        let res = app.get_with_token("/api/v1/me", &token).await;
        assert_eq!(res.status(), 401, "{what}");
    }
    // The same claims signed properly do work: the refusals above are about the forgery.
    assert_eq!(
        app.get_with_token("/api/v1/me", &sign(&claims))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_access_token_expires_when_the_clock_passes_its_lifetime() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        200
    );
    app.clock.advance(chrono::Duration::seconds(900 + 60));
    let res = app.get_with_token("/api/v1/me", &partner.token).await;
    let body = assert_problem(res, 401, "/problems/unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": partner.refresh_token}),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let second: serde_json::Value = res.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, partner.refresh_token);
    assert_eq!(
        app.get_with_token("/api/v1/me", second["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Replaying the first token: refused, and the whole family is revoked.
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": partner.refresh_token}),
            None,
        )
        .await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": second_refresh}),
            None,
        )
        .await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": "garbage"}),
            None,
        )
        .await;
    assert_problem(res, 401, "/problems/unauthorized").await;
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_refresh_family() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let res = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": partner.refresh_token}),
            Some(&partner.token),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        401
    );
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": partner.refresh_token}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn admin_routes_refuse_partners_with_403_and_anonymous_with_401() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let res = app.get_with_token("/api/v1/partners", &partner.token).await;
    assert_problem(res, 403, "/problems/forbidden").await;
    assert_problem(
        app.get("/api/v1/partners").await,
        401,
        "/problems/unauthorized",
    )
    .await;
}

#[tokio::test]
async fn admins_manage_partners_and_disabling_cuts_tokens_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/partners",
            &json!({"email": "Acme@Example.com", "password": "a long enough password", "display_name": "Acme"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 201);
    let acme: serde_json::Value = res.json().await.unwrap();
    assert_eq!(acme["email"], "acme@example.com");
    let id = acme["id"].as_str().unwrap().to_owned();
    let dup = app
        .post_json(
            "/api/v1/partners",
            &json!({"email": "ACME@example.com", "password": "a long enough password", "display_name": "Acme 2"}),
            Some(&admin.token),
        )
        .await;
    assert_problem(dup, 409, "/problems/conflict").await;

    let tokens = app
        .login("acme@example.com", "a long enough password")
        .await;
    let acme_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_with_token("/api/v1/me", acme_token).await.status(),
        200
    );

    let res = app
        .patch_json(
            &format!("/api/v1/partners/{id}"),
            &json!({"disabled": true}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["disabled"], true);
    assert_eq!(
        app.get_with_token("/api/v1/me", acme_token).await.status(),
        401
    );
    let res = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"email": "acme@example.com", "password": "a long enough password"}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);

    let res = app
        .patch_json(
            &format!("/api/v1/partners/{id}"),
            &json!({"disabled": false, "display_name": "Acme Ltd"}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    // Enabling does not revive the sessions that disabling ended: the partner logs in anew.
    assert_eq!(
        app.get_with_token("/api/v1/me", acme_token).await.status(),
        401
    );
    let tokens = app
        .login("acme@example.com", "a long enough password")
        .await;
    let acme_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_with_token("/api/v1/me", acme_token).await.status(),
        200
    );

    let res = app
        .post_json(
            &format!("/api/v1/partners/{id}/password"),
            &json!({"password": "a brand new password"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 204);
    app.login("acme@example.com", "a brand new password").await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": tokens["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "a password reset ends the old sessions");

    let list: serde_json::Value = app
        .get_with_token("/api/v1/partners?limit=10", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["next_cursor"].is_null());
    let res = app
        .get_with_token(
            &format!("/api/v1/partners/{}", uuid::Uuid::new_v4()),
            &admin.token,
        )
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    let res = app
        .get_with_token("/api/v1/partners/not-a-uuid", &admin.token)
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    let res = app
        .get_with_token("/api/v1/partners?limit=0", &admin.token)
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
}

#[tokio::test]
async fn a_deleted_users_token_stops_working() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(partner.id)
        .execute(&app.db)
        .await
        .unwrap();
    // The cached status lives at most auth.user_status_cache_secs; the test settings keep it
    // short, and deletion is not an API operation, so drop the cache entry as an admin would.
    let key = app
        .state
        .redis
        .key(&format!("auth:{{{}}}:user_status", partner.id));
    app.state
        .redis
        .run::<()>(redis::cmd("DEL").arg(&key))
        .await
        .unwrap();
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn registration_follows_its_setting() {
    let app = spawn_app().await;
    let body =
        json!({"email": "new@example.com", "password": "twelve chars ok", "display_name": "New"});
    let res = app.post_json("/api/v1/auth/register", &body, None).await;
    assert_eq!(res.status(), 202);
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "bad", "password": "short", "display_name": ""}),
            None,
        )
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "email");

    let closed = spawn_app_with(|s| s.auth.registration_enabled = false).await;
    let res = closed.post_json("/api/v1/auth/register", &body, None).await;
    assert_problem(res, 403, "/problems/forbidden").await;
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_and_success_resets() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let partner = app.partner().await;
    let wrong = json!({"email": partner.email, "password": "wrong password!"});
    for _ in 0..2 {
        assert_eq!(
            app.post_json("/api/v1/auth/token", &wrong, None)
                .await
                .status(),
            401
        );
    }
    // A success before the limit resets the account counter.
    app.login(&partner.email, TEST_PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            app.post_json("/api/v1/auth/token", &wrong, None)
                .await
                .status(),
            401
        );
    }
    let res = app.post_json("/api/v1/auth/token", &wrong, None).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 900);
    assert_problem(res, 429, "/problems/too-many-requests").await;
    // Even the right password waits out the window.
    let right = json!({"email": partner.email, "password": TEST_PASSWORD});
    assert_eq!(
        app.post_json("/api/v1/auth/token", &right, None)
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn an_operator_sets_a_lost_admin_password_and_old_sessions_end() {
    use currency_conversion::auth::service::{AuthError, set_password_by_email};
    let app = spawn_app().await;
    let admin = app.admin().await;
    let new_password = "a brand new passphrase";

    // The email is matched case-insensitively, as at login.
    let user = set_password_by_email(&app.auth, &admin.email.to_uppercase(), new_password)
        .await
        .unwrap();
    assert_eq!(user.id, admin.id);

    let res = app
        .post_json(
            "/api/v1/auth/token",
            &serde_json::json!({"email": admin.email, "password": TEST_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "the old password still works");
    let tokens = app.login(&admin.email, new_password).await;
    assert!(tokens["access_token"].is_string());
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": admin.refresh_token}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "a session from before survived");

    assert!(matches!(
        set_password_by_email(&app.auth, "nobody@example.com", new_password).await,
        Err(AuthError::UserNotFound)
    ));
    assert!(matches!(
        set_password_by_email(&app.auth, &admin.email, "short").await,
        Err(AuthError::Invalid {
            field: "password",
            ..
        })
    ));
}

#[tokio::test]
async fn login_log_lines_name_the_account_by_id_or_pseudonym_never_by_email() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let wrong = json!({"email": partner.email, "password": "not the password at all"});
    let res = app.post_json("/api/v1/auth/token", &wrong, None).await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    app.login(&partner.email.to_uppercase(), TEST_PASSWORD)
        .await;

    // The success is logged (before its answer is sent), naming the user and, from the login's
    // span, the account's pseudonym.
    let lines = crate::helpers::logged_lines_with(&partner.id.to_string());
    let success = lines
        .iter()
        .find(|l| l.contains("login succeeded"))
        .unwrap_or_else(|| panic!("no login line for {}: {lines:?}", partner.id));
    let line: serde_json::Value = serde_json::from_str(success).unwrap();
    let account = line["span"]["account"].as_str().unwrap_or_default();
    assert!(
        account.len() == 16 && account.bytes().all(|b| b.is_ascii_hexdigit()),
        "{success}"
    );
    for spelling in [partner.email.clone(), partner.email.to_uppercase()] {
        let leaked = crate::helpers::logged_lines_with(&spelling);
        assert!(leaked.is_empty(), "{leaked:?}");
    }
}

//! Client credentials and the `client_credentials` grant: what a partner's machine does to get
//! a token, what it is told when that fails (RFC 6749 §5.2), and revocation across instances.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

async fn oauth_error(res: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    if status == 401 {
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

async fn list(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get_with_token(&format!("/api/v1/credentials{query}"), token)
        .await
}

#[tokio::test]
async fn a_partners_machine_gets_a_token_with_basic_or_form_fields_and_uses_it() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let created = app
        .create_credential(&partner.token, " billing server ")
        .await;
    assert_eq!(created["name"], "billing server");
    assert_eq!(created["partner_id"], partner.id.to_string());
    assert!(created["last_used_at"].is_null());
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let client_id = created["client_id"].as_str().unwrap().to_owned();

    let listed: Value = list(&app, &partner.token, "").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let shown = &listed["data"][0];
    assert_eq!(shown["client_id"], client_id.as_str());
    assert!(shown.get("client_secret").is_none(), "{shown}");
    assert!(!listed.to_string().contains(&secret));
    assert!(shown["last_used_at"].is_null());
    assert!(shown["created_at"].is_string());

    let res = app
        .token_form(
            &[("grant_type", "client_credentials")],
            Some((&client_id, &secret)),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let by_basic = body["access_token"].as_str().unwrap().to_owned();

    let res = app
        .token_form(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let by_form = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    for token in [&by_basic, &by_form] {
        let me: Value = app
            .get_with_token("/api/v1/me", token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["id"], partner.id.to_string());
        assert_eq!(
            app.get_with_token("/api/v1/conversions", token)
                .await
                .status(),
            200
        );
    }
    let listed: Value = list(&app, &partner.token, "").await.json().await.unwrap();
    assert!(listed["data"][0]["last_used_at"].is_string(), "{listed}");
}

#[tokio::test]
async fn grant_errors_are_oauth_json() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let c = app.create_credential(&partner.token, "machine").await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    let grant = ("grant_type", "client_credentials");

    let wrong = app
        .token_form(&[grant], Some((id, "ccs_secret_wrong")))
        .await;
    oauth_error(wrong, 401, "invalid_client").await;
    let unknown = app
        .token_form(
            &[
                grant,
                ("client_id", "ccs_nobody"),
                ("client_secret", secret),
            ],
            None,
        )
        .await;
    oauth_error(unknown, 401, "invalid_client").await;
    oauth_error(app.token_form(&[grant], None).await, 401, "invalid_client").await;
    let not_basic = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", "Bearer abc")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    oauth_error(not_basic, 401, "invalid_client").await;

    let password = app
        .token_form(&[("grant_type", "password")], Some((id, secret)))
        .await;
    oauth_error(password, 400, "unsupported_grant_type").await;
    let missing = app
        .token_form(&[("client_id", id), ("client_secret", secret)], None)
        .await;
    oauth_error(missing, 400, "invalid_request").await;
    let empty = app
        .token_form(&[("grant_type", "")], Some((id, secret)))
        .await;
    oauth_error(empty, 400, "invalid_request").await;
    let repeated = app.token_form(&[grant, grant], Some((id, secret))).await;
    oauth_error(repeated, 400, "invalid_request").await;
    let both = app
        .token_form(&[grant, ("client_secret", secret)], Some((id, secret)))
        .await;
    oauth_error(both, 400, "invalid_request").await;

    // A JSON body is still a person's login, with problem+json answers.
    let login = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"grant_type": "client_credentials"}),
            None,
        )
        .await;
    assert_problem(login, 422, "/problems/validation-failed").await;
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_like_logins() {
    let app = spawn_app_with(|s| s.auth.max_failed_logins = 3).await;
    let partner = app.partner().await;
    let c = app.create_credential(&partner.token, "machine").await;
    let id = c["client_id"].as_str().unwrap();
    let grant = [("grant_type", "client_credentials")];
    for _ in 0..3 {
        let res = app.token_form(&grant, Some((id, "wrong"))).await;
        assert_eq!(res.status(), 401);
    }
    let res = app.token_form(&grant, Some((id, "wrong"))).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_problem(res, 429, "/problems/too-many-requests").await;
    // Blocked means blocked: the right secret waits too.
    let right = app
        .token_form(&grant, Some((id, c["client_secret"].as_str().unwrap())))
        .await;
    assert_eq!(right.status(), 429);
}

#[tokio::test]
async fn a_revoked_credentials_tokens_stop_working_on_every_instance() {
    let app = spawn_app().await;
    let other = app.another_instance().await;
    let partner = app.partner().await;
    let c = app.create_credential(&partner.token, "machine").await;
    let token = app.client_token(&c).await;
    let me_on_other = || {
        app.client
            .get(format!("{other}/api/v1/me"))
            .bearer_auth(&token)
            .send()
    };
    // The other instance has checked the token and remembers it as good.
    assert_eq!(me_on_other().await.unwrap().status(), 200);
    assert_eq!(me_on_other().await.unwrap().status(), 200);

    let res = app
        .delete(
            &format!("/api/v1/credentials/{}", c["id"].as_str().unwrap()),
            &partner.token,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_with_token("/api/v1/me", &token).await.status(), 401);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = me_on_other().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} on the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let res = app
        .token_form(
            &[("grant_type", "client_credentials")],
            Some((
                c["client_id"].as_str().unwrap(),
                c["client_secret"].as_str().unwrap(),
            )),
        )
        .await;
    oauth_error(res, 401, "invalid_client").await;
    // The partner's own login session is untouched.
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        200
    );
    let listed: Value = list(&app, &partner.token, "").await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]));
}

#[tokio::test]
async fn a_disabled_partners_credentials_issue_nothing_and_their_tokens_stop() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let c = app.create_credential(&partner.token, "machine").await;
    let token = app.client_token(&c).await;
    let res = app
        .patch_json(
            &format!("/api/v1/partners/{}", partner.id),
            &json!({"disabled": true}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_with_token("/api/v1/me", &token).await.status(), 401);
    let res = app
        .token_form(
            &[("grant_type", "client_credentials")],
            Some((
                c["client_id"].as_str().unwrap(),
                c["client_secret"].as_str().unwrap(),
            )),
        )
        .await;
    oauth_error(res, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_partner_holds_at_most_the_configured_live_credentials() {
    let app = spawn_app_with(|s| s.auth.max_credentials_per_partner = 2).await;
    let partner = app.partner().await;
    let first = app.create_credential(&partner.token, "one").await;
    app.create_credential(&partner.token, "two").await;
    let third = app
        .try_create_credential(&partner.token, "three", None)
        .await;
    assert_problem(third, 409, "/problems/credential-limit").await;
    let res = app
        .delete(
            &format!("/api/v1/credentials/{}", first["id"].as_str().unwrap()),
            &partner.token,
        )
        .await;
    assert_eq!(res.status(), 204);
    app.create_credential(&partner.token, "three").await;
    // Another partner's allowance is its own.
    let other = app.partner().await;
    app.create_credential(&other.token, "one").await;
}

#[tokio::test]
async fn admins_manage_a_partners_credentials_and_partners_only_their_own() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let other = app.partner().await;

    let res = app
        .try_create_credential(&admin.token, "set up by ops", Some(partner.id))
        .await;
    assert_eq!(res.status(), 201);
    let by_admin: Value = res.json().await.unwrap();
    assert_eq!(by_admin["partner_id"], partner.id.to_string());
    let token = app.client_token(&by_admin).await;
    let me: Value = app
        .get_with_token("/api/v1/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], partner.id.to_string());

    let res = app
        .try_create_credential(&admin.token, "whose?", None)
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .try_create_credential(&admin.token, "nobody", Some(uuid::Uuid::new_v4()))
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    let res = app
        .try_create_credential(&admin.token, "an admin", Some(admin.id))
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    let res = app
        .try_create_credential(&other.token, "not mine", Some(partner.id))
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
    let res = app.try_create_credential(&partner.token, " ", None).await;
    assert_problem(res, 422, "/problems/validation-failed").await;

    let listed: Value = list(&app, &admin.token, &format!("?partner_id={}", partner.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], by_admin["id"]);
    assert_problem(
        list(&app, &other.token, &format!("?partner_id={}", partner.id)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let other_list: Value = list(&app, &other.token, "").await.json().await.unwrap();
    assert_eq!(other_list["data"], json!([]));

    let path = format!("/api/v1/credentials/{}", by_admin["id"].as_str().unwrap());
    assert_problem(
        app.delete(&path, &other.token).await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_eq!(app.delete(&path, &admin.token).await.status(), 204);
    assert_problem(
        app.delete(&path, &admin.token).await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_eq!(app.get_with_token("/api/v1/me", &token).await.status(), 401);
}

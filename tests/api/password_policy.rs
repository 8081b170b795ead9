//! New passwords must not be guessable, whoever sets them and for whichever role.

use currency_conversion::auth::{AuthError, Role};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

const GUESSABLE: [&str; 3] = ["password1234", "            ", "123456789012"];

#[tokio::test]
async fn guessable_passwords_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    for weak in GUESSABLE {
        let res = app
            .post_json(
                "/api/v1/partners",
                &json!({"email": "new@example.com", "password": weak, "display_name": "New"}),
                Some(&admin.token),
            )
            .await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "password", "{weak:?}");
        let why = problem["errors"][0]["message"].as_str().unwrap();
        assert!(why.starts_with("is too easy to guess"), "{weak:?}: {why}");

        let res = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": "self@example.com", "password": weak, "display_name": "Self"}),
                None,
            )
            .await;
        assert_problem(res, 422, "/problems/validation-failed").await;

        let res = app
            .post_json(
                &format!("/api/v1/partners/{}/password", partner.id),
                &json!({"password": weak}),
                Some(&admin.token),
            )
            .await;
        assert_problem(res, 422, "/problems/validation-failed").await;
    }
    // The common-password case names itself.
    let res = app
        .post_json(
            "/api/v1/partners",
            &json!({"email": "new@example.com", "password": "password1234", "display_name": "New"}),
            Some(&admin.token),
        )
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("common"),
        "{problem}"
    );
}

#[tokio::test]
async fn admins_get_no_exemption_from_the_password_policy() {
    let app = spawn_app().await;
    // Admins are created by the CLI (`user create --role admin`), which calls this.
    for weak in GUESSABLE {
        let refused = currency_conversion::auth::service::create_user(
            &app.auth,
            "root@example.com",
            weak,
            Role::Admin,
            "Root",
        )
        .await;
        assert!(
            matches!(
                refused,
                Err(AuthError::Invalid {
                    field: "password",
                    ..
                })
            ),
            "{weak:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_password_made_of_the_partners_own_name_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/partners",
            &json!({"email": "acmetrading@example.com", "password": "acmetrading2026", "display_name": "Acme Trading"}),
            Some(&admin.token),
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
}

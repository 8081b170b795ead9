//! Registration does not tell a stranger which emails have accounts.

use serde_json::json;

use crate::helpers::{TEST_PASSWORD, spawn_app};

#[tokio::test]
async fn a_new_and_a_taken_email_get_the_same_answer() {
    let app = spawn_app().await;
    let taken = app.partner().await;
    let register = async |email: String| {
        let body = json!({"email": email, "password": "Quartz lantern drifts over 7 bays", "display_name": "Someone"});
        let res = app.post_json("/api/v1/auth/register", &body, None).await;
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap();
        (status, body)
    };
    let new = register("newcomer@example.com".into()).await;
    let existing = register(taken.email.to_uppercase()).await;
    assert_eq!(new.0, 202);
    assert_eq!(new, existing);
    // The newcomer can log in; the existing account kept its password.
    app.login("newcomer@example.com", "Quartz lantern drifts over 7 bays")
        .await;
    app.login(&taken.email, TEST_PASSWORD).await;
    let res = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"email": taken.email, "password": "Quartz lantern drifts over 7 bays"}),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);
}

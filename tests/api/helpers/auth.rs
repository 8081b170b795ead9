//! Users and their tokens.

use currency_conversion::auth::Role;

use super::TestApp;

pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// A user created for a test, with a valid access token.
pub struct TestUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Creates a user directly (as the CLI would) and logs it in over HTTP.
    pub async fn create_user(&self, role: Role) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let user = currency_conversion::auth::service::create_user(
            &self.auth,
            &email,
            TEST_PASSWORD,
            role,
            "Test user",
        )
        .await
        .unwrap();
        let tokens = self.login(&email, TEST_PASSWORD).await;
        TestUser {
            id: user.id,
            email,
            token: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn admin(&self) -> TestUser {
        self.create_user(Role::Admin).await
    }

    pub async fn partner(&self) -> TestUser {
        self.create_user(Role::Partner).await
    }

    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let res = self
            .post_json(
                "/api/v1/auth/token",
                &serde_json::json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(res.status(), 200, "login failed");
        res.json().await.unwrap()
    }
}

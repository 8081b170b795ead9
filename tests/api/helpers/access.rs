//! Partner access: more instances of one deployment, client credentials and the token grant.

use currency_conversion::startup::Application;

use super::TestApp;

impl TestApp {
    /// Starts another instance of this deployment (the same database, Redis prefix, settings and
    /// clock) on a port of its own, as a second replica behind a load balancer; returns its base
    /// URL. It serves until the test ends.
    pub async fn another_instance(&self) -> String {
        let app = Application::build(self.settings.clone(), self.clock.clone())
            .await
            .expect("second instance builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    /// Creates a client credential named `name` as the caller of `token` (`POST /credentials`),
    /// for `partner_id` when given; returns the answer as is.
    pub async fn try_create_credential(
        &self,
        token: &str,
        name: &str,
        partner_id: Option<uuid::Uuid>,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({ "name": name });
        if let Some(id) = partner_id {
            body["partner_id"] = id.to_string().into();
        }
        self.post_json("/api/v1/credentials", &body, Some(token))
            .await
    }

    /// [`TestApp::try_create_credential`] for the partner of `token`, asserting it was created;
    /// returns it (with its `client_id` and `client_secret`).
    pub async fn create_credential(&self, token: &str, name: &str) -> serde_json::Value {
        let res = self.try_create_credential(token, name, None).await;
        assert_eq!(res.status(), 201, "credential not created");
        res.json().await.unwrap()
    }

    /// `POST /auth/token` with `form` as `application/x-www-form-urlencoded`, and HTTP Basic
    /// `(user, password)` when given.
    pub async fn token_form(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .client
            .post(self.url("/api/v1/auth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((user, password)) = basic {
            req = req.basic_auth(user, Some(password));
        }
        req.send().await.unwrap()
    }

    /// An access token for `credential` (as [`TestApp::create_credential`] returned it) by the
    /// `client_credentials` grant with HTTP Basic; fails the test unless one is issued.
    pub async fn client_token(&self, credential: &serde_json::Value) -> String {
        let res = self
            .token_form(
                &[("grant_type", "client_credentials")],
                Some((
                    credential["client_id"].as_str().unwrap(),
                    credential["client_secret"].as_str().unwrap(),
                )),
            )
            .await;
        assert_eq!(res.status(), 200, "no client token");
        let body: serde_json::Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

//! Conversions and batches: what a partner does with them, the app's handle for running their
//! use cases directly (as the jobs do), and idempotent POSTs of any kind.

use super::TestApp;

impl TestApp {
    /// Converts `amount` of `from` into `to` as the partner of `token` (`POST /conversions`).
    pub async fn convert(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: &str,
    ) -> reqwest::Response {
        self.post_json(
            "/api/v1/conversions",
            &serde_json::json!({"from": from, "to": to, "amount": amount}),
            Some(token),
        )
        .await
    }

    /// Sends `body` to `POST /conversions` with `Idempotency-Key: key`, as a partner retrying
    /// safely does.
    pub async fn convert_idempotently(
        &self,
        token: &str,
        body: &serde_json::Value,
        key: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/conversions"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends `body` to `POST path` with `Idempotency-Key: key`, as a partner retrying safely
    /// does.
    pub async fn post_idempotently(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
        key: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Converts `amount` of `from` into `to` at the locked rate of quote `quote_id`, as
    /// [`TestApp::convert`] does at the rate in force (`POST /conversions` with `quote_id`).
    pub async fn convert_on_quote(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: &str,
        quote_id: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json(
            "/api/v1/conversions",
            &serde_json::json!({"from": from, "to": to, "amount": amount, "quote_id": quote_id}),
            Some(token),
        )
        .await
    }

    /// Converts `items` (a JSON array of `{from, to, amount[, quote_id]}`) all or nothing
    /// (`POST /conversions/batch`), with an `Idempotency-Key` when given.
    pub async fn convert_batch(
        &self,
        token: &str,
        items: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/api/v1/conversions/batch"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "items": items }));
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await.unwrap()
    }

    /// A conversion as the caller of `token` reads it (`GET /conversions/{id}`).
    pub async fn get_conversion(&self, token: &str, id: &serde_json::Value) -> reqwest::Response {
        let id = id.as_str().expect("a conversion id");
        self.get_with_token(&format!("/api/v1/conversions/{id}"), token)
            .await
    }

    /// Cancels conversion `id` as the partner of `token`.
    pub async fn cancel(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/conversions/{id}/cancel"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// The conversion history as the caller of `token` sees it; `query` is the query string
    /// without its `?` (empty for the first page of everything).
    pub async fn history(&self, token: &str, query: &str) -> reqwest::Response {
        let path = if query.is_empty() {
            "/api/v1/conversions".to_owned()
        } else {
            format!("/api/v1/conversions?{query}")
        };
        self.get_with_token(&path, token).await
    }

    /// How many conversions are stored, of every partner and status.
    pub async fn stored_conversions(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM conversions")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// The app's conversions handle (its pool, clock, `conversions.*`, rates and group
    /// committer), e.g. for `finalize_due` without going through the queue.
    pub fn conversions(&self) -> currency_conversion::conversions::Conversions {
        self.conversions.clone()
    }

    /// How long the app remembers an `Idempotency-Key` (`conversions.idempotency_ttl_secs`).
    pub fn idempotency_keys(&self) -> currency_conversion::idempotency::Keys {
        currency_conversion::idempotency::Keys::new(self.settings.conversions.idempotency_ttl_secs)
    }
}

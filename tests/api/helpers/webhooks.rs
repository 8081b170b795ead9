//! Webhooks: what a partner does with its endpoints and their deliveries, and the dispatcher
//! run as the `deliver_webhooks` job runs it.

use super::TestApp;

impl TestApp {
    /// Registers a webhook endpoint at `url` for `events` (a JSON array of event type names) as
    /// the partner of `token`, and returns the answer (with the signing secret). Fails the test
    /// unless the endpoint is created.
    pub async fn register_webhook(
        &self,
        token: &str,
        url: &str,
        events: serde_json::Value,
    ) -> serde_json::Value {
        let res = self
            .try_register_webhook(token, &serde_json::json!({"url": url, "events": events}))
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// Sends a webhook registration `body` as is, for tests of what is refused.
    pub async fn try_register_webhook(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json("/api/v1/webhooks", body, Some(token)).await
    }

    /// The live webhook endpoints of the partner of `token` (`{"data": [...]}`).
    pub async fn list_webhooks(&self, token: &str) -> serde_json::Value {
        let res = self.get_with_token("/api/v1/webhooks", token).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Deletes webhook endpoint `id`.
    pub async fn delete_webhook(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete(&format!("/api/v1/webhooks/{id}"), token).await
    }

    /// Rotates the signing secret of webhook endpoint `id`.
    pub async fn rotate_webhook_secret(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// Sends a `ping` to webhook endpoint `id` (`POST /webhooks/{id}/test`).
    pub async fn ping_webhook(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/test"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// The first page of webhook endpoint `id`'s deliveries, as answered.
    pub async fn webhook_deliveries(&self, token: &str, id: &str) -> reqwest::Response {
        self.get_with_token(&format!("/api/v1/webhooks/{id}/deliveries"), token)
            .await
    }

    /// The deliveries of webhook endpoint `id`, newest first. Fails the test unless they are
    /// shown.
    pub async fn webhook_delivery_list(&self, token: &str, id: &str) -> Vec<serde_json::Value> {
        let res = self.webhook_deliveries(token, id).await;
        assert_eq!(res.status(), 200);
        let page: serde_json::Value = res.json().await.unwrap();
        page["data"].as_array().unwrap().clone()
    }

    /// Retries `delivery` of webhook endpoint `id` by hand.
    pub async fn retry_webhook_delivery(
        &self,
        token: &str,
        id: &str,
        delivery: &str,
    ) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// Runs the webhook dispatcher once, as the `deliver_webhooks` job does; returns how many
    /// attempts it made.
    pub async fn dispatch_webhooks(&self) -> u64 {
        self.webhooks.dispatch_due().await.unwrap()
    }
}

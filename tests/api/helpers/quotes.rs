//! Quotes (rate locks): asking for one, reading it, and the app's handle for the expiry job.

use super::TestApp;

impl TestApp {
    /// Asks for a quote of `from` → `to` held for `lock` (`none`, `five_minutes`, `hour`,
    /// `day`), for a fixed `amount` when given (`POST /quotes`).
    pub async fn quote(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: Option<&str>,
        lock: &str,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({"from": from, "to": to, "lock": lock});
        if let Some(amount) = amount {
            body["amount"] = amount.into();
        }
        self.post_json("/api/v1/quotes", &body, Some(token)).await
    }

    /// [`TestApp::quote`], asserting the quote was created; returns it.
    pub async fn quoted(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: Option<&str>,
        lock: &str,
    ) -> serde_json::Value {
        let res = self.quote(token, from, to, amount, lock).await;
        assert_eq!(res.status(), 201, "quote not created");
        res.json().await.unwrap()
    }

    /// A quote as its partner reads it now (`GET /quotes/{id}`).
    pub async fn get_quote(&self, token: &str, id: &serde_json::Value) -> reqwest::Response {
        let id = id.as_str().expect("a quote id");
        self.get_with_token(&format!("/api/v1/quotes/{id}"), token)
            .await
    }

    /// The app's quotes handle, e.g. for `record_expiries` without going through the queue.
    pub fn quotes(&self) -> currency_conversion::quotes::Quotes {
        currency_conversion::quotes::Quotes::new(
            &self.rates,
            self.settings.quotes.clone(),
            self.idempotency_keys(),
        )
    }
}

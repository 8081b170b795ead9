//! What a client sees while a dependency is away. Each test cuts a TCP proxy of its own in front
//! of PostgreSQL or Redis; the machine's shared servers are never touched.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::proxy::TcpProxy;

/// The app with PostgreSQL reached through `proxy` and a short pool acquire timeout.
async fn app_behind_postgres_proxy(proxy: &TcpProxy) -> TestApp {
    let port = proxy.port;
    spawn_app_with(|s| {
        let url = s.database.url.expose_secret().to_owned();
        let db = url.rsplit_once('/').unwrap().1.to_owned();
        s.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/{db}"));
        s.database.acquire_timeout_ms = 500;
    })
    .await
}

async fn assert_unavailable(res: reqwest::Response) {
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = assert_problem(res, 503, "/problems/service-unavailable").await;
    let retry_after: u64 = retry_after
        .expect("a 503 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after > 0);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("sqlx") && !detail.contains("127.0.0.1"),
        "{detail}"
    );
}

#[tokio::test]
async fn requests_get_503_with_retry_after_while_postgres_is_cut() {
    let proxy = TcpProxy::start("127.0.0.1:5432".into()).await;
    let app = app_behind_postgres_proxy(&proxy).await;
    let partner = app.partner().await;
    assert_eq!(
        app.get_with_token("/api/v1/conversions", &partner.token)
            .await
            .status(),
        200
    );
    proxy.cut();
    for _ in 0..3 {
        assert_unavailable(
            app.get_with_token("/api/v1/conversions", &partner.token)
                .await,
        )
        .await;
        assert_unavailable(
            app.post_json(
                "/api/v1/conversions",
                &json!({"from": "EUR", "to": "USD", "amount": "1.00"}),
                Some(&partner.token),
            )
            .await,
        )
        .await;
    }
    proxy.restore();
    // Connections cut with the proxy are discarded on their next use; poll with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = app
            .get_with_token("/api/v1/conversions", &partner.token)
            .await
            .status();
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not recover: {status}"
        );
    }
}

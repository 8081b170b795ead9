use currency_conversion::settings::{Environment, MetricsExposure};
use secrecy::SecretString;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use crate::proxy::TcpProxy;

#[tokio::test]
async fn liveness_answers_ok_with_a_generated_request_id() {
    let app = spawn_app().await;
    let res = app.get("/health/live").await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "generated id {id}");
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_an_unsafe_one_replaced() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("X-Request-Id", "partner-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "partner-abc-123");
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn readiness_is_ok_when_postgres_and_redis_answer() {
    let app = spawn_app().await;
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "up");
    assert_eq!(body["checks"]["redis"], "up");
}

#[tokio::test]
async fn readiness_stays_200_reporting_redis_degraded_when_redis_is_cut() {
    let redis_proxy = TcpProxy::start("127.0.0.1:6379".into()).await;
    let port = redis_proxy.port;
    let app = spawn_app_with(|s| {
        s.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let partner = app.partner().await;
    assert_eq!(app.get("/health/ready").await.status(), 200);
    redis_proxy.cut();
    // The API still serves without Redis, so the instance must stay in rotation.
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"], "down", "{body}");
    assert_eq!(body["checks"]["postgres"], "up", "{body}");
    assert_eq!(
        app.get_with_token("/api/v1/currencies", &partner.token)
            .await
            .status(),
        200
    );
    redis_proxy.restore();
    // A pooled connection that died with the cut is discarded on its next use; poll briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
        if body["status"] == "ok" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness did not recover: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readiness_is_503_naming_postgres_when_postgres_is_cut() {
    let pg_proxy = TcpProxy::start("127.0.0.1:5432".into()).await;
    let port = pg_proxy.port;
    let app = spawn_app_with(|s| {
        let url = secrecy::ExposeSecret::expose_secret(&s.database.url).to_owned();
        let db = url.rsplit_once('/').unwrap().1.to_owned();
        s.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/{db}"));
        s.database.acquire_timeout_ms = 500;
    })
    .await;
    assert_eq!(app.get("/health/ready").await.status(), 200);
    pg_proxy.cut();
    let body = assert_problem(
        app.get("/health/ready").await,
        503,
        "/problems/service-unavailable",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("postgres") && !detail.contains("redis"),
        "{detail}"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problem_json() {
    let app = spawn_app().await;
    assert_problem(app.get("/no/such/route").await, 404, "/problems/not-found").await;
    let res = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "/problems/method-not-allowed").await;
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let app = spawn_app().await;
    app.get("/health/live").await;
    app.get("/health/live").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            "http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("db_pool_max_connections"));
}

/// Issue 14 item 2: made-up methods and paths grew /metrics without bound (a new series per
/// method and per path). Labels are bounded now: unknown methods are `OTHER`, unmatched paths
/// one `unmatched` route.
#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_metrics() {
    let app = spawn_app().await;
    app.get("/health/live").await;
    app.get("/metrics").await;
    let before = app.get("/metrics").await.text().await.unwrap();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        for path in [format!("/made-up/{i}"), "/health/live".to_owned()] {
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_client_error(), "{method} {path}");
        }
        let res = app.get(&format!("/made-up/{i}/{}", i * 7)).await;
        assert_eq!(res.status(), 404);
    }
    let after = app.get("/metrics").await.text().await.unwrap();
    let series = |text: &str| text.matches("http_requests_total{").count();
    // At most the three new label sets: OTHER and GET on `unmatched`, OTHER on /health/live.
    assert!(series(&after) <= series(&before) + 3, "{after}");
    assert!(after.contains("method=\"OTHER\""), "{after}");
    assert!(after.contains("route=\"unmatched\""), "{after}");
    assert!(
        !after.contains("PROBE") && !after.contains("made-up"),
        "{after}"
    );
    assert!(
        after.len() < before.len() + 8 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    eprintln!(
        "/metrics: {} bytes before, {} after 900 hostile requests",
        before.len(),
        after.len()
    );
}

#[tokio::test]
async fn metrics_behind_a_bearer_token_refuse_everyone_else() {
    let token = "metrics-scraper-token-0123456789";
    let app = spawn_app_with(|s| {
        s.metrics.bearer_token = Some(SecretString::from(token));
    })
    .await;
    let res = app.get("/metrics").await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app
        .get_with_token("/metrics", "not-the-metrics-token-at-all")
        .await;
    assert_problem(res, 401, "/problems/unauthorized").await;
    let res = app.get_with_token("/metrics", token).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("db_pool_max_connections")
    );
}

#[tokio::test]
async fn production_serves_metrics_without_a_token_on_loopback_only_and_says_so() {
    let app = spawn_app_with(|s| {
        s.environment = Environment::Production;
        s.metrics.expose = MetricsExposure::Separate;
        s.metrics.address = "0.0.0.0:0".into();
        s.metrics.bearer_token = None;
    })
    .await;
    let address = app.metrics_address.expect("a metrics listener");
    assert!(address.ip().is_loopback(), "bound on {address}");
    let said = crate::helpers::logged_lines_with(&format!("127.0.0.1:{}", address.port()));
    assert!(
        said.iter()
            .any(|l| l.contains("loopback only") && l.contains("CCS__METRICS__BEARER_TOKEN")),
        "{said:?}"
    );

    // With a token, the configured interface.
    let app = spawn_app_with(|s| {
        s.environment = Environment::Production;
        s.metrics.expose = MetricsExposure::Separate;
        s.metrics.address = "0.0.0.0:0".into();
        s.metrics.bearer_token = Some("a-scraper-token-of-some-length".to_owned().into());
    })
    .await;
    let address = app.metrics_address.expect("a metrics listener");
    assert!(address.ip().is_unspecified(), "bound on {address}");
}

#[tokio::test]
async fn metrics_can_be_off_or_on_a_listener_of_their_own() {
    let off = spawn_app_with(|s| s.metrics.expose = MetricsExposure::Off).await;
    assert_eq!(off.get("/metrics").await.status(), 404);
    assert_eq!(off.metrics_port, None);

    let app = spawn_app_with(|s| {
        s.metrics.expose = MetricsExposure::Separate;
        s.metrics.address = "127.0.0.1:0".into();
    })
    .await;
    app.get("/health/live").await;
    // Not on the API's port.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let port = app.metrics_port.expect("a metrics listener");
    assert_ne!(port, app.port);
    let res = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            "http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 1"
        ),
        "the API's requests are counted: {text}"
    );
    // The metrics listener serves nothing else.
    let res = app
        .client
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn openapi_document_and_swagger_ui_are_served() {
    let app = spawn_app().await;
    let res = app.get("/api-docs/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert!(doc["paths"]["/health/ready"].is_object());
    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    assert!(app.get("/docs").await.status().is_redirection());
}

/// No container engine runs here, so check what can be checked: compose.yaml is well-formed
/// enough to hold the three services with health checks and a named volume, and the image
/// builds in stages and runs as a non-root user with a HEALTHCHECK.
#[test]
fn compose_and_containerfile_describe_the_whole_stack() {
    let compose = std::fs::read_to_string("compose.yaml").unwrap();
    assert!(!compose.contains('\t'), "YAML must not contain tabs");
    for needle in [
        "services:",
        "  postgres:",
        "  redis:",
        "  app:",
        "healthcheck:",
        "volumes:",
        "pgdata:",
        "service_healthy",
        "dockerfile: Containerfile",
    ] {
        assert!(compose.contains(needle), "compose.yaml lacks {needle}");
    }
    let containerfile = std::fs::read_to_string("Containerfile").unwrap();
    assert!(
        containerfile.matches("FROM ").count() >= 2,
        "multi-stage build"
    );
    for needle in ["USER app", "HEALTHCHECK", "--release", "COPY settings"] {
        assert!(
            containerfile.contains(needle),
            "Containerfile lacks {needle}"
        );
    }
}

#[tokio::test]
async fn a_port_in_use_is_named_with_the_setting_that_changes_it() {
    let app = spawn_app().await;
    let mut settings = app.settings.clone();
    settings.server.port = app.port;
    let err = match currency_conversion::startup::Application::build(
        settings,
        currency_conversion::clock::Clock::system(),
    )
    .await
    {
        Ok(_) => panic!("a second server bound a port in use"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("CCS__SERVER__PORT"), "{err}");
}

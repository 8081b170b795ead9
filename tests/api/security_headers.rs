//! What every response says about caching and content sniffing, and which documentation routes
//! exist.

use crate::helpers::{spawn_app, spawn_app_with};

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn json_answers_and_problems_are_not_stored_and_not_sniffed() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    for res in [
        app.get_with_token("/api/v1/me", &partner.token).await,
        app.get("/api/v1/me").await,
        app.get("/api/v1/no-such-route").await,
        app.get("/health/live").await,
    ] {
        let what = format!("{} {}", res.url().path(), res.status());
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            header(&res, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    }
    // Non-JSON keeps its own caching and still gets nosniff.
    let css = app.get("/monitor/static/monitor.css").await;
    assert_eq!(header(&css, "cache-control"), Some("public, max-age=300"));
    assert_eq!(header(&css, "x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn docs_and_the_openapi_document_follow_their_settings() {
    let on = spawn_app().await;
    assert_eq!(on.get("/docs/").await.status(), 200);
    assert_eq!(on.get("/api-docs/openapi.json").await.status(), 200);

    let off = spawn_app_with(|s| {
        s.server.swagger_ui = false;
        s.server.openapi_document = false;
    })
    .await;
    assert_eq!(off.get("/docs/").await.status(), 404);
    assert_eq!(off.get("/api-docs/openapi.json").await.status(), 404);

    let document_only = spawn_app_with(|s| s.server.swagger_ui = false).await;
    assert_eq!(document_only.get("/docs/").await.status(), 404);
    let res = document_only.get("/api-docs/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert!(doc["paths"]["/api/v1/auth/token"].is_object());
}

/// The headers every answer carries, whatever answered: `X-Request-Id`, `nosniff`, and
/// `no-store` for a problem.
fn assert_common_headers(res: &reqwest::Response, what: &str) {
    assert!(
        header(res, "x-request-id").is_some(),
        "{what}: no request id"
    );
    assert_eq!(
        header(res, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header(res, "cache-control"), Some("no-store"), "{what}");
}

#[tokio::test]
async fn a_json_array_body_is_refused_on_every_route_that_takes_a_body_with_every_header() {
    let app = spawn_app().await;
    let partner = app.partner().await;
    let doc = currency_conversion::openapi::document();
    let mut checked = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        // Any id will do: the body is refused before a route looks at it.
        let path = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "01a22281-9219-700e-89df-07d6d362fbe9"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in operations.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&partner.token)
                .json(&serde_json::json!(["USD", "JPY", "1.00"]))
                .send()
                .await
                .unwrap();
            let what = format!("{method} {path}");
            assert_common_headers(&res, &what);
            // A partner's refused request is counted and says what is left.
            assert!(header(&res, "ratelimit").is_some(), "{what}: no RateLimit");
            let body =
                crate::helpers::assert_problem(res, 422, "/problems/validation-failed").await;
            assert_eq!(body["errors"][0]["field"], "body", "{what}: {body}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} operations take a body");
}

#[tokio::test]
async fn a_429_carries_the_request_id_and_the_security_headers() {
    let app = spawn_app_with(|s| s.limits.requests_per_minute = 1).await;
    let partner = app.partner().await;
    assert_eq!(
        app.get_with_token("/api/v1/me", &partner.token)
            .await
            .status(),
        200
    );
    let res = app.get_with_token("/api/v1/me", &partner.token).await;
    assert_common_headers(&res, "429");
    assert_eq!(
        header(&res, "ratelimit-policy"),
        Some("\"default\";q=1;w=60")
    );
    crate::helpers::assert_problem(res, 429, "/problems/too-many-requests").await;
}

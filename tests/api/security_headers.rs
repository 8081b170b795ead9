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

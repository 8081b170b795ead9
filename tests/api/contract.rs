//! The partner contract: the OpenAPI document and the routes the app registers are the same set,
//! a wrong method is a 405 naming the right ones, and the API's inputs are what the document
//! says. `make contract` runs the outside judges (validator, client generator, schemathesis);
//! these tests keep the cheap parts of the contract in `make test`.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::{assert_problem, spawn_app};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `(path, methods)` of every operation in the served document.
async fn documented(app: &crate::helpers::TestApp) -> BTreeMap<String, BTreeSet<String>> {
    let doc: serde_json::Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| currency_conversion::openapi::HTTP_METHODS.contains(&k.as_str()))
            .map(|k| k.to_ascii_uppercase())
            .collect();
        out.insert(path.clone(), methods);
    }
    out
}

/// A concrete URL for a templated path.
fn concrete(path: &str) -> String {
    path.replace("{id}", "01a22281-9219-700e-89df-07d6d362fbe9")
        .replace("{code}", "USD")
        .replace("{name}", "no_such_task")
}

/// Every resource pattern registered in the source (`web::resource("…")`), as absolute paths.
/// The API routes are mounted under `/api/v1`; health and metrics at the root. The monitor's HTML
/// pages are not part of the API.
fn registered_in_source() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(std::path::Path::new("src"), &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        if file.starts_with("src/monitor") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A route registered any other way would escape this list (and `cfg.route` has no 405).
        for forbidden in [
            "cfg.route(",
            "#[get(",
            "#[post(",
            "#[patch(",
            "#[delete(",
            "#[put(",
        ] {
            assert!(
                !text.contains(forbidden),
                "{}: register routes as web::resource(…) so that this test sees them",
                file.display()
            );
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("web::resource(\"") {
            rest = &rest[at + "web::resource(\"".len()..];
            let pattern = &rest[..rest.find('"').unwrap()];
            if pattern.starts_with("/health") || pattern == "/metrics" {
                out.insert(pattern.to_owned());
            } else {
                out.insert(format!("/api/v1{pattern}"));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_registered_route_is_documented_and_every_documented_route_is_served() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doc = documented(&app).await;
    let paths: BTreeSet<String> = doc.keys().cloned().collect();
    assert_eq!(
        registered_in_source(),
        paths,
        "resources registered in src/ and paths in the OpenAPI document differ"
    );
    for (path, methods) in &doc {
        let url = app.url(&concrete(path));
        for method in METHODS {
            let res = app
                .client
                .request(method.parse().unwrap(), &url)
                .bearer_auth(&admin.token)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            if methods.contains(method) {
                assert_ne!(status, 405, "{method} {path} is documented but not served");
                if status == 404 {
                    let body: serde_json::Value = res.json().await.unwrap();
                    let detail = body["detail"].as_str().unwrap_or_default();
                    assert!(
                        !detail.starts_with("no route for"),
                        "{method} {path} is documented but not served"
                    );
                }
            } else {
                // The router's own list of the resource's methods must be the documented one.
                let allow: BTreeSet<String> = res
                    .headers()
                    .get("allow")
                    .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow ({status})"))
                    .to_str()
                    .unwrap()
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .collect();
                assert_eq!(&allow, methods, "{path}: Allow differs from the document");
                assert_problem(res, 405, "/problems/method-not-allowed").await;
            }
        }
    }
}

#[tokio::test]
async fn every_operation_has_a_unique_id_a_described_response_and_problem_json_errors() {
    let doc = currency_conversion::openapi::document();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: operationId {id} is not unique"
            );
            // A verb and what it acts on (`listConversions`), not a bare handler name.
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && (id.chars().any(|c| c.is_ascii_uppercase()) || id == "logout"),
                "{method} {path}: operationId {id} should say what the operation does"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    // The client_credentials grant answers its errors in OAuth's own JSON
                    // (RFC 6749 §5.2), beside the login's problems.
                    let expected: &[&str] =
                        if id == "createToken" && (status == "400" || status == "401") {
                            &["application/json", "application/problem+json"]
                        } else {
                            &["application/problem+json"]
                        };
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        expected,
                        "{method} {path} {status}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path}: no 401"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_json_array_where_an_object_is_expected_is_refused() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let partner = app.partner().await;
    let res = app
        .post_json(
            "/api/v1/conversions",
            &serde_json::json!(["USD", "JPY", "1.00"]),
            Some(&partner.token),
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    let res = app
        .post_json(
            "/api/v1/auth/token",
            &serde_json::json!([partner.email, crate::helpers::TEST_PASSWORD]),
            None,
        )
        .await;
    let body = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "body");
}

#[tokio::test]
async fn an_unsupported_currency_in_a_conversion_is_a_422_on_its_field() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let partner = app.partner().await;
    let res = app
        .post_json(
            "/api/v1/conversions",
            &serde_json::json!({"from": "USD", "to": "QQQ", "amount": "1.00"}),
            Some(&partner.token),
        )
        .await;
    let body = assert_problem(res, 422, "/problems/currency-not-supported").await;
    assert!(body["detail"].as_str().unwrap().contains("QQQ"), "{body}");
    assert_eq!(body["errors"][0]["field"], "to", "{body}");
    // The same in a query, for each parameter that names a currency.
    for (path, field) in [
        ("/api/v1/convert?from=QQQ&to=USD&amount=1", "from"),
        ("/api/v1/rates/latest?base=QQQ", "base"),
        ("/api/v1/rates/latest?symbols=USD,QQQ", "symbols"),
    ] {
        let res = app.get_with_token(path, &partner.token).await;
        let body = assert_problem(res, 422, "/problems/currency-not-supported").await;
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn liveness_answers_with_its_documented_fields() {
    let app = spawn_app().await;
    let res = app.get("/health/live").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let doc = currency_conversion::openapi::document();
    assert_eq!(
        doc["components"]["schemas"]["Liveness"]["required"],
        serde_json::json!(["status"])
    );
}

#[tokio::test]
async fn a_query_parameter_of_the_wrong_type_is_a_422_naming_it() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let partner = app.partner().await;
    for (path, field, says) in [
        ("/api/v1/conversions?status=pending", "status", "pending"),
        ("/api/v1/conversions?currency=EURO", "currency", "EURO"),
        ("/api/v1/conversions?format=xml", "format", "xml"),
        (
            "/api/v1/conversions/summary?group_by=week",
            "group_by",
            "week",
        ),
        ("/api/v1/rates/latest?base=E1R", "base", "E1R"),
        (
            "/api/v1/rates/latest?symbols=EUR,,GBP",
            "symbols",
            "not a currency code",
        ),
        ("/api/v1/rates/at?date=yesterday", "date", "a date such as"),
        (
            "/api/v1/rates/series?symbols=EUR&from=2026-11-01&to=soon",
            "to",
            "neither an RFC 3339 instant",
        ),
        (
            "/api/v1/rates/series?symbols=EUR&from=2026-11-01",
            "to",
            "is required",
        ),
        (
            "/api/v1/convert?from=USD&to=EU&amount=1",
            "to",
            "not a currency code",
        ),
        (
            "/api/v1/convert?from=USD&to=EUR&amount=1&at=now",
            "at",
            "RFC 3339",
        ),
    ] {
        let res = app.get_with_token(path, &partner.token).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn a_json_field_of_the_wrong_type_is_a_422_naming_it() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let partner = app.partner().await;
    for (path, body, field) in [
        (
            "/api/v1/quotes",
            serde_json::json!({"from": "EUR", "to": "USD", "lock": "week"}),
            "lock",
        ),
        (
            "/api/v1/quotes",
            serde_json::json!({"from": "EURO", "to": "USD", "lock": "hour"}),
            "from",
        ),
        (
            "/api/v1/conversions",
            serde_json::json!({"from": "EUR", "to": "US", "amount": "1"}),
            "to",
        ),
        (
            "/api/v1/conversions",
            serde_json::json!({"from": "EUR", "to": "USD", "amount": "1", "quote_id": "nope"}),
            "quote_id",
        ),
        // A body sent to an operation whose body is optional must still fit.
        (
            "/api/v1/auth/logout",
            serde_json::json!({"refresh_token": 42}),
            "refresh_token",
        ),
    ] {
        let res = app.post_json(path, &body, Some(&partner.token)).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(
            problem["errors"][0]["field"], field,
            "{path} {body}: {problem}"
        );
    }
}

#[tokio::test]
async fn minor_units_written_as_a_whole_json_float_are_a_whole_number() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/currencies",
            &serde_json::json!({"code": "USD", "minor_units": 2.0}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app
        .post_json(
            "/api/v1/currencies",
            &serde_json::json!({"code": "EUR", "minor_units": 2.5}),
            Some(&admin.token),
        )
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "minor_units", "{problem}");
}

#[tokio::test]
async fn an_idempotency_key_outside_its_rule_is_a_422_naming_the_header() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let partner = app.partner().await;
    for key in ["k".repeat(256), "caf\u{e9}".to_owned()] {
        let res = app
            .client
            .post(app.url("/api/v1/conversions"))
            .bearer_auth(&partner.token)
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
            )
            .json(&serde_json::json!({"from": "EUR", "to": "USD", "amount": "1.00"}))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(
            problem["errors"][0]["field"], "Idempotency-Key",
            "{problem}"
        );
    }
}

#[tokio::test]
async fn partner_operations_document_both_token_schemes_the_ratelimit_fields_and_429() {
    let doc = currency_conversion::openapi::document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["clientCredentials"]["flows"]["clientCredentials"]["tokenUrl"],
        "/api/v1/auth/token"
    );
    let partner_ops = [
        ("/api/v1/conversions", "post"),
        ("/api/v1/conversions", "get"),
        ("/api/v1/rates/latest", "get"),
        ("/api/v1/usage", "get"),
        ("/api/v1/credentials", "post"),
    ];
    for (path, method) in partner_ops {
        let op = &doc["paths"][path][method];
        let security = op["security"].as_array().unwrap();
        assert!(
            security
                .iter()
                .any(|s| s.get("clientCredentials").is_some())
                && security.iter().any(|s| s.get("bearer").is_some()),
            "{method} {path}: {security:?}"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("429"), "{method} {path}: no 429");
        for (status, response) in responses {
            for header in ["RateLimit", "RateLimit-Policy"] {
                assert!(
                    response["headers"].get(header).is_some(),
                    "{method} {path} {status}: no {header}"
                );
            }
        }
        assert!(
            responses["429"]["headers"].get("Retry-After").is_some(),
            "{method} {path}"
        );
    }
    // Admin-only operations take neither a machine token nor a partner's budget.
    let admin_only = &doc["paths"]["/api/v1/partners/{id}/limits"]["put"];
    assert!(
        !admin_only["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.get("clientCredentials").is_some())
    );
    assert!(admin_only["responses"]["200"].get("headers").is_none());
}

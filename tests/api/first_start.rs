//! A new installation that has never reached a rates provider: what `seed` gives it and how the
//! service describes it.

use crate::helpers::spawn_app;

#[tokio::test]
async fn seeded_rates_say_they_come_from_the_seed_not_from_a_provider() {
    let app = spawn_app().await;
    currency_conversion::seed::run(&app.state, &app.rates)
        .await
        .unwrap();
    let token = app.partner().await.token;

    let res = app
        .get_with_token("/api/v1/rates/latest?base=EUR&symbols=USD,GBP", &token)
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["provider"], "seed", "{body}");
    assert_eq!(body["as_of"], "2026-10-30T15:00:00Z", "{body}");
    assert_eq!(body["stale"], true, "{body}");
    assert_eq!(body["rates"]["USD"], "1.1172", "{body}");
    // A price on them says so too.
    let body: serde_json::Value = app
        .get_with_token("/api/v1/convert?from=EUR&to=USD&amount=10", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["rate_sources"], serde_json::json!(["seed"]), "{body}");
    assert_eq!(body["rate_details"]["sources"], serde_json::json!(["seed"]));
}

#[tokio::test]
async fn seeded_history_gives_a_year_of_series_and_past_rates_offline() {
    let app = spawn_app().await;
    currency_conversion::seed::run(&app.state, &app.rates)
        .await
        .unwrap();
    let token = app.partner().await.token;

    let res = app
        .get_with_token(
            "/api/v1/rates/series?base=EUR&symbols=USD&from=2025-11-01&to=2026-10-31&interval=day",
            &token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let days = body["rates"]["USD"].as_array().unwrap();
    assert!(days.len() > 200, "{} days: {body}", days.len());

    let res = app
        .get_with_token(
            "/api/v1/rates/at?date=2026-03-02&base=EUR&symbols=USD",
            &token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["provider"], "seed", "{body}");
    assert!(
        body["as_of"].as_str().unwrap().starts_with("2026-03-02"),
        "{body}"
    );
}

#[tokio::test]
async fn bgn_is_historic_after_seeding_not_offered() {
    let app = spawn_app().await;
    // An installation seeded before Bulgaria's changeover has BGN enabled.
    currency_conversion::currencies::service::add(
        &app.state.db,
        currency_conversion::currencies::service::AddCurrency {
            code: "BGN".parse().unwrap(),
            name: None,
            minor_units: None,
            iso: None,
            enabled: None,
        },
        app.clock.now(),
    )
    .await
    .unwrap();
    currency_conversion::seed::run(&app.state, &app.rates)
        .await
        .unwrap();
    let partner = app.partner().await.token;
    let admin = app.admin().await.token;

    let offered: serde_json::Value = app
        .get_with_token("/api/v1/currencies", &partner)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !offered.to_string().contains("\"BGN\""),
        "BGN still offered: {offered}"
    );
    let all: serde_json::Value = app
        .get_with_token("/api/v1/currencies?include_inactive=true", &admin)
        .await
        .json()
        .await
        .unwrap();
    let bgn = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "BGN")
        .unwrap_or_else(|| panic!("BGN missing: {all}"));
    assert!(!bgn["retired_at"].is_null(), "{bgn}");

    // Its history stays readable: the lev's last ECB rate, of 2025-12-31.
    let res = app
        .get_with_token(
            "/api/v1/rates/at?date=2025-12-31&base=EUR&symbols=BGN",
            &partner,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["rates"]["BGN"], "1.9558", "{body}");
}

#[tokio::test]
async fn request_errors_name_the_field_and_the_format_it_needs() {
    let app = spawn_app().await;
    let token = app.partner().await.token;

    // A JSON number for an amount: reported on `amount`, saying to send a string.
    for (body, field, says) in [
        (
            serde_json::json!({"from": "USD", "to": "JPY", "amount": 1.5}),
            "amount",
            "must be a JSON string such as \"1.5\"",
        ),
        (
            serde_json::json!({"from": "USD", "to": "JPY", "amount": 250}),
            "amount",
            "must be a JSON string such as \"250\"",
        ),
        (
            serde_json::json!({"from": "USD", "to": "JPY"}),
            "amount",
            "is required",
        ),
    ] {
        let res = app
            .post_json("/api/v1/conversions", &body, Some(&token))
            .await;
        let problem = crate::helpers::assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{problem}");
        assert!(!message.contains("line 1 column"), "{problem}");
    }

    // A typed query parameter in the wrong format: named, with the format and the value.
    for (path, field, says) in [
        (
            "/api/v1/conversions?from=2026-11-01",
            "from",
            "expected an RFC 3339 instant such as 2026-10-30T15:00:00Z, got \"2026-11-01\"",
        ),
        (
            "/api/v1/conversions?limit=many",
            "limit",
            "expected a whole number",
        ),
        (
            "/api/v1/conversions/summary?partner_id=42",
            "partner_id",
            "expected a partner id (UUID)",
        ),
    ] {
        let res = app.get_with_token(path, &token).await;
        let problem = crate::helpers::assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{path}: {problem}"
        );
    }
}

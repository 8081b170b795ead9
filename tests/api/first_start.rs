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
            code: "BGN".into(),
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

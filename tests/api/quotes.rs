//! Rate locks: spreads, expiry on the injected clock, who may use a quote and how often.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app_with_rates};

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_quote_shows_the_reference_rate_the_spread_and_the_result() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let res = app
        .quote(&partner.token, "EUR", "USD", Some("100.00"), "hour")
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let q: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/quotes/{}", q["id"].as_str().unwrap())
    );
    assert_eq!(q["from"], "EUR");
    assert_eq!(q["to"], "USD");
    assert_eq!(q["lock"], "hour");
    assert_eq!(q["status"], "active");
    // 20 bp below the reference: 1.1 × 0.998 = 1.0978; 100 × 1.0978 = 109.78.
    assert_eq!(q["rate_details"]["reference_rate"], "1.1");
    assert_eq!(q["rate_details"]["spread_bps"], 20);
    assert_eq!(q["rate_details"]["provider"], "frankfurter");
    assert_eq!(q["rate_details"]["stale_rate"], false);
    assert!(q["rate_details"]["reference_as_of"].is_string());
    assert_eq!(q["rate"], "1.0978");
    assert_eq!(q["amount"], "100.00");
    assert_eq!(q["result"], "109.78");
    assert_eq!(
        instant(&q["expires_at"]) - instant(&q["created_at"]),
        Duration::hours(1)
    );

    let read: Value = app
        .get_with_token(&location, &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, q);
}

#[tokio::test]
async fn each_lock_costs_the_configured_spread_and_results_round_half_even() {
    let app = spawn_app_with_rates(|s| {
        s.quotes.spread_bps.none = 0;
        s.quotes.spread_bps.five_minutes = 1;
        s.quotes.spread_bps.day = 100;
    })
    .await;
    let partner = app.partner().await;
    let q = app.quoted(&partner.token, "EUR", "USD", None, "none").await;
    assert_eq!(q["rate"], "1.1");
    assert_eq!(q["result"], Value::Null);
    assert_eq!(q["amount"], Value::Null);
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("100.00"), "day")
        .await;
    assert_eq!(q["rate"], "1.089");
    assert_eq!(
        instant(&q["expires_at"]) - instant(&q["created_at"]),
        Duration::days(1)
    );
    // Cross rate GBP→JPY = 163.5 / 0.85 = 192.352941176470588 (18 significant digits), less 1 bp;
    // 3 GBP × 192.333705882352941… = 577.00111… → JPY has no minor units: 577.
    let q = app
        .quoted(&partner.token, "GBP", "JPY", Some("3"), "five_minutes")
        .await;
    assert_eq!(q["rate_details"]["reference_rate"], "192.352941176470588");
    assert_eq!(q["rate"], "192.3337058823529409412");
    assert_eq!(q["amount"], "3.00");
    assert_eq!(q["result"], "577");
}

#[tokio::test]
async fn converting_on_a_quote_uses_its_locked_rate_after_rates_move() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("10.00"), "five_minutes")
        .await;
    app.clock.advance(Duration::seconds(30));
    app.store_rates(&[("USD", "1.2"), ("GBP", "0.85"), ("JPY", "163.5")])
        .await;

    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "10.00", &q["id"])
        .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    // 1.1 less 5 bp = 1.09945; 10 × 1.09945 = 10.9945 → 10.99.
    assert_eq!(c["rate"], "1.09945");
    assert_eq!(c["result"], "10.99");
    assert_eq!(c["quote_id"], q["id"]);
    assert_eq!(c["rate_as_of"], q["rate_details"]["reference_as_of"]);
    let read: Value = app
        .get_conversion(&partner.token, &c["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["quote_id"], q["id"]);

    // Without a quote, the rate in force.
    let c: Value = app
        .convert(&partner.token, "EUR", "USD", "10.00")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["rate"], "1.2");
    assert_eq!(c["quote_id"], Value::Null);
}

#[tokio::test]
async fn a_quote_expires_when_the_clock_reaches_the_end_of_its_lock() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("1.00"), "five_minutes")
        .await;
    app.clock.advance(Duration::seconds(299));
    let read: Value = app
        .get_quote(&partner.token, &q["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "active");

    app.clock.advance(Duration::seconds(1));
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "1.00", &q["id"])
        .await;
    assert_problem(res, 409, "/problems/quote-expired").await;
    let read: Value = app
        .get_quote(&partner.token, &q["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "expired");
}

#[tokio::test]
async fn an_indicative_quote_holds_nothing_to_convert_on() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app.quoted(&partner.token, "EUR", "USD", None, "none").await;
    assert_eq!(q["status"], "expired");
    assert_eq!(q["expires_at"], q["created_at"]);
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "1.00", &q["id"])
        .await;
    assert_problem(res, 409, "/problems/quote-expired").await;
}

#[tokio::test]
async fn a_partner_can_neither_read_nor_use_another_partners_quote() {
    let app = spawn_app_with_rates(|_| {}).await;
    let owner = app.partner().await;
    let other = app.partner().await;
    let q = app
        .quoted(&owner.token, "EUR", "USD", Some("1.00"), "hour")
        .await;
    assert_problem(
        app.get_quote(&other.token, &q["id"]).await,
        404,
        "/problems/not-found",
    )
    .await;

    // Using it reads exactly like using a quote that does not exist.
    let foreign = app
        .convert_on_quote(&other.token, "EUR", "USD", "1.00", &q["id"])
        .await;
    let foreign = assert_problem(foreign, 422, "/problems/validation-failed").await;
    let missing = app
        .convert_on_quote(
            &other.token,
            "EUR",
            "USD",
            "1.00",
            &json!(uuid::Uuid::now_v7()),
        )
        .await;
    let missing = assert_problem(missing, 422, "/problems/validation-failed").await;
    assert_eq!(foreign["errors"], missing["errors"]);
    assert_eq!(foreign["errors"][0]["field"], "quote_id");
    assert_problem(
        app.get_with_token("/api/v1/quotes/not-a-uuid", &owner.token)
            .await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_eq!(app.stored_conversions().await, 0);
}

#[tokio::test]
async fn a_conversion_on_a_quote_must_match_its_pair_and_fixed_amount() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("50.00"), "hour")
        .await;
    let res = app
        .convert_on_quote(&partner.token, "EUR", "GBP", "50.00", &q["id"])
        .await;
    let body = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "to");
    let res = app
        .convert_on_quote(&partner.token, "USD", "EUR", "50.00", &q["id"])
        .await;
    let body = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "from");
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "50.01", &q["id"])
        .await;
    let body = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "amount");
    // The same amount written differently is the same amount.
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "50", &q["id"])
        .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["result"], q["result"]);
}

#[tokio::test]
async fn a_rate_lock_converts_once() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let fixed = app
        .quoted(&partner.token, "EUR", "USD", Some("5.00"), "hour")
        .await;
    assert_eq!(
        app.convert_on_quote(&partner.token, "EUR", "USD", "5.00", &fixed["id"])
            .await
            .status(),
        201
    );
    let again = app
        .convert_on_quote(&partner.token, "EUR", "USD", "5.00", &fixed["id"])
        .await;
    assert_problem(again, 409, "/problems/quote-used").await;
    let read: Value = app
        .get_quote(&partner.token, &fixed["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "used");
    assert!(read["used_at"].is_string());
}

#[tokio::test]
async fn a_rate_lock_without_an_amount_is_refused_since_it_would_be_a_free_option() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    for lock in ["five_minutes", "hour", "day"] {
        let res = app.quote(&partner.token, "EUR", "USD", None, lock).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "amount", "{lock}");
    }
    // Indicative: shown, holds nothing.
    let q = app.quoted(&partner.token, "EUR", "USD", None, "none").await;
    assert_eq!(q["status"], "expired");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM quotes WHERE lock <> 'none'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn concurrent_conversions_on_a_fixed_amount_quote_convert_it_once() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("7.00"), "hour")
        .await;
    let attempts =
        (0..8).map(|_| app.convert_on_quote(&partner.token, "EUR", "USD", "7.00", &q["id"]));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM conversions WHERE quote_id IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_stale_reference_rate_cannot_be_locked_where_stale_rates_are_refused() {
    let app = spawn_app_with_rates(|s| s.rates.max_age_secs = 3600).await;
    app.clock.advance(Duration::hours(2));
    let partner = app.partner().await;
    let res = app
        .quote(&partner.token, "EUR", "USD", Some("1.00"), "day")
        .await;
    assert_problem(res, 422, "/problems/stale-rate").await;

    let lenient = spawn_app_with_rates(|s| {
        s.rates.max_age_secs = 3600;
        s.conversions.stale_rates = currency_conversion::settings::StaleRatePolicy::Allow;
    })
    .await;
    lenient.clock.advance(Duration::hours(2));
    let partner = lenient.partner().await;
    let q = lenient
        .quoted(&partner.token, "EUR", "USD", Some("1.00"), "day")
        .await;
    assert_eq!(q["rate_details"]["stale_rate"], true);
    let c: Value = lenient
        .convert_on_quote(&partner.token, "EUR", "USD", "1.00", &q["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["stale_rate"], true);
}

#[tokio::test]
async fn a_replayed_conversion_on_a_used_quote_returns_the_original() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let q = app
        .quoted(&partner.token, "EUR", "USD", Some("9.00"), "five_minutes")
        .await;
    let body = json!({"from": "EUR", "to": "USD", "amount": "9.00", "quote_id": q["id"]});
    let send = || app.convert_idempotently(&partner.token, &body, "quote-order-1");
    let first = send().await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // Even after the lock ended, the key answers with what was done.
    app.clock.advance(Duration::minutes(10));
    let again = send().await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
}

#[tokio::test]
async fn bad_quote_requests_name_the_field() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    for ((from, to, amount, lock), field) in [
        (("EUR", "USD", None, "week"), "lock"),
        (("EUR", "EUR", None, "hour"), "to"),
        (("EUR", "USD", Some("-1"), "hour"), "amount"),
        (("EUR", "USD", Some("1.001"), "hour"), "amount"),
    ] {
        let res = app.quote(&partner.token, from, to, amount, lock).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let res = app
        .post_json(
            "/api/v1/conversions",
            &json!({"from": "EUR", "to": "USD", "amount": "1", "quote_id": "nope"}),
            Some(&partner.token),
        )
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "quote_id");
    // Admins do not lock rates.
    let admin = app.admin().await;
    let res = app.quote(&admin.token, "EUR", "USD", None, "hour").await;
    assert_eq!(res.status(), 403);
}

/// A rate lock is priced as a conversion is, on the one pricing path: for every pricing fault
/// `POST /quotes` answers with exactly the problem `POST /conversions` gives (status, type,
/// title, detail, field errors).
#[tokio::test]
async fn a_quote_is_refused_with_the_problem_a_conversion_gets() {
    let app = spawn_app_with_rates(|s| s.rates.max_age_secs = 3600).await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let res = app.delete("/api/v1/currencies/GBP", &admin.token).await;
    assert_eq!(res.status(), 200);
    let res = app
        .patch_json(
            "/api/v1/currencies/JPY",
            &json!({"enabled": false}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    for (from, to, amount, problem) in [
        ("EUR", "EUR", "1.00", "/problems/validation-failed"),
        ("XYZ", "USD", "1.00", "/problems/currency-not-supported"),
        ("EUR", "XYZ", "1.00", "/problems/currency-not-supported"),
        ("EUR", "JPY", "1.00", "/problems/currency-disabled"),
        ("GBP", "EUR", "1.00", "/problems/currency-retired"),
        ("EUR", "USD", "1.001", "/problems/validation-failed"),
        ("EUR", "USD", "0", "/problems/validation-failed"),
        (
            "EUR",
            "USD",
            "100000000000000000000",
            "/problems/validation-failed",
        ),
    ] {
        let problem_body = same_problem(&app, &partner.token, from, to, amount).await;
        assert_eq!(problem_body["type"], problem, "{problem_body}");
    }
    app.clock.advance(Duration::hours(2));
    // A fresh token: the first one expired with the rates.
    let partner = app.partner().await;
    let stale = same_problem(&app, &partner.token, "EUR", "USD", "1.00").await;
    assert_eq!(stale["type"], "/problems/stale-rate", "{stale}");
}

/// Asks for a quote and for a conversion of `amount` of `from` in `to`, asserts both answer the
/// same, and returns the quote's answer.
async fn same_problem(
    app: &crate::helpers::TestApp,
    token: &str,
    from: &str,
    to: &str,
    amount: &str,
) -> Value {
    let quoted = app.quote(token, from, to, Some(amount), "hour").await;
    let converted = app.convert(token, from, to, amount).await;
    let (quoted_status, converted_status) = (quoted.status(), converted.status());
    let quoted: Value = quoted.json().await.unwrap();
    let converted: Value = converted.json().await.unwrap();
    eprintln!("quote-fault {from}->{to} {amount}: {quoted_status} {quoted}");
    assert_eq!(
        (quoted_status, &quoted),
        (converted_status, &converted),
        "{from} → {to}, {amount}"
    );
    quoted
}

#[tokio::test]
async fn open_rate_locks_are_capped_per_partner_even_when_requested_in_parallel() {
    let app = spawn_app_with_rates(|s| s.quotes.max_open_locks = 3).await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let attempts = (0..10).map(|_| app.quote(&partner.token, "EUR", "USD", Some("10.00"), "hour"));
    let answers = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429, 429, 429, 429, 429]);
    let refused = answers
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("a refusal");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_problem(refused, 429, "/problems/too-many-open-locks").await;
    // Indicative quotes hold nothing and are not counted; another partner has its own cap.
    app.quoted(&partner.token, "EUR", "USD", None, "none").await;
    app.quoted(&other.token, "EUR", "USD", Some("10.00"), "hour")
        .await;
    // A lock used frees its place.
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM quotes WHERE lock = 'hour' AND partner_id = $1 LIMIT 1",
    )
    .bind(partner.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let res = app
        .convert_on_quote(&partner.token, "EUR", "USD", "10.00", &json!(open[0]))
        .await;
    assert_eq!(res.status(), 201);
    app.quoted(&partner.token, "EUR", "USD", Some("10.00"), "hour")
        .await;
}

#[tokio::test]
async fn the_notional_of_open_rate_locks_is_capped_in_the_notional_currency() {
    // 1 EUR = 1.1 USD: 1,000 USD is worth 909.09 EUR.
    let app = spawn_app_with_rates(|s| {
        s.quotes.max_open_notional = "2000".parse().unwrap();
    })
    .await;
    let partner = app.partner().await;
    app.quoted(&partner.token, "USD", "GBP", Some("1000.00"), "day")
        .await;
    app.quoted(&partner.token, "EUR", "GBP", Some("1000.00"), "day")
        .await;
    // 1,909.09 EUR open: another 150 USD (136.36 EUR) would pass 2,000.
    let res = app
        .quote(&partner.token, "USD", "GBP", Some("150.00"), "day")
        .await;
    let problem = assert_problem(res, 429, "/problems/too-many-open-locks").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("EUR"),
        "{problem}"
    );
    app.quoted(&partner.token, "USD", "GBP", Some("99.00"), "day")
        .await;
}

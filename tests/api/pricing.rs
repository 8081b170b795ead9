//! The one pricing pipeline, seen from outside: the same fault gets the same problem from
//! `GET /convert`, `POST /conversions`, `POST /quotes` and each item of a batch; the steps run
//! in one order; no sequence of requests returns more value than it put in.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with_rates};

/// What a fault looks like to a client: status, problem type, the field named and what is said
/// of it.
#[derive(Debug, PartialEq, Eq)]
struct Fault {
    status: u16,
    problem_type: String,
    field: Option<String>,
    message: String,
}

impl Fault {
    /// From a problem of a single request.
    fn of(status: u16, problem: &Value) -> Self {
        let first = &problem["errors"][0];
        Self {
            status,
            problem_type: problem["type"].as_str().unwrap_or_default().to_owned(),
            field: first["field"].as_str().map(str::to_owned),
            message: first["message"]
                .as_str()
                .or(problem["detail"].as_str())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

async fn fault(res: reqwest::Response) -> Fault {
    let status = res.status().as_u16();
    let problem: Value = res.json().await.unwrap();
    Fault::of(status, &problem)
}

/// Sends one request to each of the four entry points and returns what each answered: the
/// three single requests as they are, the batch's item as the fault it names.
async fn the_four_answers(
    app: &TestApp,
    token: &str,
    from: &str,
    to: &str,
    amount: &str,
) -> [Fault; 4] {
    let indicative = app
        .get_with_token(
            &format!("/api/v1/convert?from={from}&to={to}&amount={amount}"),
            token,
        )
        .await;
    let conversion = app.convert(token, from, to, amount).await;
    let lock = app.quote(token, from, to, Some(amount), "hour").await;
    let batch = app
        .convert_batch(
            token,
            json!([{"from": from, "to": to, "amount": amount}]),
            None,
        )
        .await;
    let batch_status = batch.status().as_u16();
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch_status, 422, "{batch}");
    assert_eq!(batch["type"], "/problems/validation-failed", "{batch}");
    let item = &batch["errors"][0];
    // The batch is 422 as a whole; its item carries the single request's problem type, field
    // (prefixed with the item) and message, and the status that type has.
    let item_fault = Fault {
        status: 0,
        problem_type: item["type"].as_str().unwrap_or_default().to_owned(),
        field: item["field"]
            .as_str()
            .and_then(|f| f.strip_prefix("items[0]."))
            .map(str::to_owned),
        message: item["message"].as_str().unwrap_or_default().to_owned(),
    };
    [
        fault(indicative).await,
        fault(conversion).await,
        fault(lock).await,
        item_fault,
    ]
}

#[tokio::test]
async fn every_entry_point_answers_a_pricing_fault_with_the_same_problem() {
    let app = spawn_app_with_rates(|s| {
        s.conversions
            .min_amounts
            .insert("USD".parse().unwrap(), "5".parse().unwrap());
    })
    .await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    assert_eq!(
        app.delete("/api/v1/currencies/GBP", &admin.token)
            .await
            .status(),
        200
    );
    let res = app
        .patch_json(
            "/api/v1/currencies/AUD",
            &json!({"enabled": false}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    // GBP has rates, so deleting it retires it; EGP is supported but no rate is stored for it;
    // USD has a minimum of 5.
    let cases = [
        ("EUR", "EUR", "1.00", "/problems/validation-failed", "to"),
        (
            "XYZ",
            "USD",
            "1.00",
            "/problems/currency-not-supported",
            "from",
        ),
        (
            "EUR",
            "XYZ",
            "1.00",
            "/problems/currency-not-supported",
            "to",
        ),
        ("EUR", "AUD", "1.00", "/problems/currency-disabled", "to"),
        ("GBP", "EUR", "1.00", "/problems/currency-retired", "from"),
        (
            "EUR",
            "USD",
            "1.001",
            "/problems/validation-failed",
            "amount",
        ),
        ("EUR", "USD", "0", "/problems/validation-failed", "amount"),
        (
            "EUR",
            "USD",
            "100000000000000000000",
            "/problems/validation-failed",
            "amount",
        ),
        // A disabled currency is refused before a bad amount is looked at…
        ("EUR", "AUD", "1.001", "/problems/currency-disabled", "to"),
        // …and a bad amount before the missing rate (the order of the pipeline).
        (
            "EUR",
            "EGP",
            "1.001",
            "/problems/validation-failed",
            "amount",
        ),
        ("EUR", "EGP", "1.00", "/problems/no-rates", "to"),
        ("EGP", "EUR", "1.00", "/problems/no-rates", "from"),
        // Below the currency's minimum, and a result that rounds to nothing.
        (
            "USD",
            "EUR",
            "4.99",
            "/problems/validation-failed",
            "amount",
        ),
        ("JPY", "USD", "1", "/problems/validation-failed", "amount"),
    ];
    for (from, to, amount, problem_type, field) in cases {
        let answers = the_four_answers(&app, &partner.token, from, to, amount).await;
        let single = &answers[0];
        assert_eq!(
            single.problem_type, problem_type,
            "{from}→{to} {amount}: {answers:?}"
        );
        for other in &answers[1..3] {
            assert_eq!(other, single, "{from}→{to} {amount}: {answers:?}");
        }
        let item = &answers[3];
        assert_eq!(
            (&item.problem_type, &item.message),
            (&single.problem_type, &single.message),
            "{from}→{to} {amount}: {answers:?}"
        );
        // The field: the one the problem names, or the currency the fault is about.
        assert_eq!(item.field.as_deref(), Some(field), "{from}→{to} {amount}");
        if single.field.is_some() {
            assert_eq!(single.field.as_deref(), Some(field), "{from}→{to} {amount}");
        }
    }
    assert_eq!(app.stored_conversions().await, 0);
}

#[tokio::test]
async fn a_stale_rate_is_refused_for_what_is_recorded_and_flagged_for_an_indicative_price() {
    let app = spawn_app_with_rates(|s| s.rates.max_age_secs = 3600).await;
    app.clock.advance(chrono::Duration::hours(2));
    let partner = app.partner().await;
    let indicative = app
        .get_with_token(
            "/api/v1/convert?from=EUR&to=USD&amount=1.00",
            &partner.token,
        )
        .await;
    assert_eq!(indicative.status(), 200);
    let indicative: Value = indicative.json().await.unwrap();
    assert_eq!(indicative["stale_rate"], true);
    let answers = the_four_answers_recorded(&app, &partner.token).await;
    for answer in &answers {
        assert_eq!(answer.problem_type, "/problems/stale-rate", "{answers:?}");
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].message, answers[2].message);
}

/// The three entry points that record a price, for EUR → USD 1.00.
async fn the_four_answers_recorded(app: &TestApp, token: &str) -> [Fault; 3] {
    let conversion = app.convert(token, "EUR", "USD", "1.00").await;
    let lock = app.quote(token, "EUR", "USD", Some("1.00"), "hour").await;
    let batch: Value = app
        .convert_batch(
            token,
            json!([{"from": "EUR", "to": "USD", "amount": "1.00"}]),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let item = &batch["errors"][0];
    [
        fault(conversion).await,
        fault(lock).await,
        Fault {
            status: 422,
            problem_type: item["type"].as_str().unwrap_or_default().to_owned(),
            field: None,
            message: item["message"].as_str().unwrap_or_default().to_owned(),
        },
    ]
}

#[tokio::test]
async fn one_yen_is_not_a_cent_and_a_thousand_yen_dust_batch_is_refused() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    // 1 JPY is 0.0067 USD: it used to round up to a cent. Now zero, which is refused.
    let res = app.convert(&partner.token, "JPY", "USD", "1").await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "amount");
    let dust: Vec<Value> = (0..1000)
        .map(|_| json!({"from": "JPY", "to": "USD", "amount": "1"}))
        .collect();
    let res = app.convert_batch(&partner.token, json!(dust), None).await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1000);
    assert_eq!(app.stored_conversions().await, 0);

    // A cent of USD is 1.486… JPY: the partner gets 1, not 2.
    let c: Value = app
        .convert(&partner.token, "USD", "JPY", "0.01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["result"], "1");
}

#[tokio::test]
async fn round_trips_through_the_api_never_return_more_than_they_put_in() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let pairs = [
        ("EUR", "JPY"),
        ("USD", "JPY"),
        ("GBP", "USD"),
        ("USD", "EUR"),
    ];
    for (a, b) in pairs {
        for amount in ["0.01", "0.07", "1.00", "3.33", "99.99", "12345.67"] {
            let there = app.convert(&partner.token, a, b, amount).await;
            if there.status() == 422 {
                continue;
            }
            let there: Value = there.json().await.unwrap();
            let got = there["result"].as_str().unwrap().to_owned();
            let back = app.convert(&partner.token, b, a, &got).await;
            if back.status() == 422 {
                continue;
            }
            let back: Value = back.json().await.unwrap();
            let returned: bigdecimal::BigDecimal =
                back["result"].as_str().unwrap().parse().unwrap();
            let started: bigdecimal::BigDecimal = amount.parse().unwrap();
            assert!(
                returned <= started,
                "{amount} {a} → {got} {b} → {returned} {a}"
            );
        }
    }
}

//! Partner pricing: a markup per partner and per pair, applied by the one pricing pipeline,
//! shown and stored as a breakdown on every price, audited, and summed in a report that equals
//! the conversions' own figures.

use bigdecimal::BigDecimal;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with_rates};

async fn set_pricing(
    app: &TestApp,
    admin: &str,
    partner: uuid::Uuid,
    body: Value,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/partners/{partner}/pricing")))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn priced(app: &TestApp, admin: &str, partner: uuid::Uuid, body: Value) -> Value {
    let res = set_pricing(app, admin, partner, body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn dec(v: &Value) -> BigDecimal {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn two_partners_get_rates_that_differ_by_exactly_their_markups() {
    let app = spawn_app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let a = app.partner().await;
    let b = app.partner().await;
    priced(&app, &admin.token, a.id, json!({"markup_bps": 25})).await;
    priced(&app, &admin.token, b.id, json!({"markup_bps": 60})).await;
    let ca: Value = app
        .convert(&a.token, "EUR", "USD", "1000.00")
        .await
        .json()
        .await
        .unwrap();
    let cb: Value = app
        .convert(&b.token, "EUR", "USD", "1000.00")
        .await
        .json()
        .await
        .unwrap();
    // Reference 1.1: 1.1 × (1 − 0.0025) = 1.09725; 1.1 × (1 − 0.0060) = 1.0934.
    assert_eq!(ca["rate"], "1.09725");
    assert_eq!(cb["rate"], "1.0934");
    assert_eq!(ca["result"], "1097.25");
    assert_eq!(cb["result"], "1093.40");
    for (c, markup, kept) in [(&ca, 25, "2.75"), (&cb, 60, "6.60")] {
        let d = &c["rate_details"];
        assert_eq!(d["reference_rate"], "1.1");
        assert_eq!(d["markup_bps"], markup);
        assert_eq!(d["lock_bps"], 0);
        assert_eq!(d["rate"], c["rate"]);
        assert_eq!(d["markup_amount"], kept);
        // markup_amount = amount × reference rounded toward zero − result.
        assert_eq!(
            dec(&d["markup_amount"]) + dec(&c["result"]),
            "1100.00".parse::<BigDecimal>().unwrap()
        );
        assert_eq!(d["provider"], c["rate_provider"]);
    }
    // The stored conversion reads back the same breakdown.
    let read: Value = app
        .get_conversion(&a.token, &ca["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["rate_details"], ca["rate_details"]);
    // A partner without pricing pays the default (0 in the shipped settings): the reference.
    let c = app.partner().await;
    let cc: Value = app
        .convert(&c.token, "EUR", "USD", "1000.00")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cc["rate"], "1.1");
    assert_eq!(cc["rate_details"]["markup_amount"], "0.00");
}

#[tokio::test]
async fn a_pair_override_applies_in_its_direction_on_every_entry_point() {
    let app = spawn_app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let p = app.partner().await;
    let view = priced(
        &app,
        &admin.token,
        p.id,
        json!({"markup_bps": 25, "pairs": {"EUR/JPY": 40}}),
    )
    .await;
    assert_eq!(view["source"], "partner");
    assert_eq!(view["pairs"]["EUR/JPY"], 40);
    // GET /convert, POST /conversions, a batch item and a quote all price EUR→JPY at 40 bp.
    let quick: Value = app
        .get_with_token("/api/v1/convert?from=EUR&to=JPY&amount=100.00", &p.token)
        .await
        .json()
        .await
        .unwrap();
    let single: Value = app
        .convert(&p.token, "EUR", "JPY", "100.00")
        .await
        .json()
        .await
        .unwrap();
    let batch: Value = app
        .convert_batch(
            &p.token,
            json!([{"from": "EUR", "to": "JPY", "amount": "100.00"}]),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let quote = app
        .quoted(&p.token, "EUR", "JPY", Some("100.00"), "none")
        .await;
    // 163.5 × (1 − 0.004) = 162.846
    for rate in [
        &quick["rate"],
        &single["rate"],
        &batch["conversions"][0]["rate"],
        &quote["rate"],
    ] {
        assert_eq!(rate, "162.846");
    }
    assert_eq!(quick["rate_details"]["markup_bps"], 40);
    assert_eq!(quote["rate_details"]["markup_bps"], 40);
    // The other direction takes the default.
    let back: Value = app
        .convert(&p.token, "JPY", "EUR", "1000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["rate_details"]["markup_bps"], 25);
    // Rates as the partner sees them: EUR→JPY less 40 bp, EUR→USD less 25 bp.
    let mine: Value = app
        .get_with_token(
            "/api/v1/rates/latest?base=EUR&symbols=USD,JPY&pricing=mine",
            &p.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["rates"]["JPY"], "162.846");
    assert_eq!(mine["rates"]["USD"], "1.09725");
    let reference: Value = app
        .get_with_token("/api/v1/rates/latest?base=EUR&symbols=USD,JPY", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reference["rates"]["USD"], "1.1");
}

#[tokio::test]
async fn a_lock_keeps_the_markup_it_was_made_with_and_changes_are_audited() {
    let app = spawn_app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let p = app.partner().await;
    priced(&app, &admin.token, p.id, json!({"markup_bps": 25})).await;
    // An hour's lock costs 20 bp more: 45 bp in all.
    let q = app
        .quoted(&p.token, "EUR", "USD", Some("100.00"), "hour")
        .await;
    assert_eq!(q["rate_details"]["spread_bps"], 45);
    assert_eq!(q["rate_details"]["markup_bps"], 25);
    assert_eq!(q["rate_details"]["lock_bps"], 20);
    priced(&app, &admin.token, p.id, json!({"markup_bps": 60})).await;
    let c: Value = app
        .convert_on_quote(&p.token, "EUR", "USD", "100.00", &q["id"])
        .await
        .json()
        .await
        .unwrap();
    // 1.1 × (1 − 0.0045) = 1.09505: the lock's price, not the new markup's.
    assert_eq!(c["rate"], "1.09505");
    assert_eq!(c["rate_details"]["markup_bps"], 25);
    assert_eq!(c["rate_details"]["lock_bps"], 20);
    assert_eq!(c["rate_details"]["markup_amount"], "0.50");
    // A new conversion pays the new markup.
    let now: Value = app
        .convert(&p.token, "EUR", "USD", "100.00")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["rate_details"]["markup_bps"], 60);

    let changes: Value = app
        .get_with_token(
            &format!("/api/v1/partners/{}/pricing/changes", p.id),
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let changes = changes["data"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["current"]["markup_bps"], 60);
    assert_eq!(changes[0]["previous"]["markup_bps"], 25);
    assert_eq!(changes[1]["previous"], Value::Null);
    assert_eq!(changes[0]["changed_by"], json!(admin.id));
}

#[tokio::test]
async fn only_admins_set_pricing_and_bad_schedules_name_their_field() {
    let app = spawn_app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let p = app.partner().await;
    let other = app.partner().await;
    let res = set_pricing(&app, &p.token, p.id, json!({"markup_bps": 0})).await;
    assert_eq!(res.status(), 403);
    for (body, field) in [
        (json!({"markup_bps": 9999}), "markup_bps"),
        (
            json!({"markup_bps": 1, "pairs": {"USDJPY": 3}}),
            "pairs.USDJPY",
        ),
        (
            json!({"markup_bps": 1, "pairs": {"USD/USD": 3}}),
            "pairs.USD/USD",
        ),
    ] {
        let res = set_pricing(&app, &admin.token, p.id, body).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let res = set_pricing(&app, &admin.token, admin.id, json!({"markup_bps": 1})).await;
    assert_problem(res, 404, "/problems/not-found").await;
    // A partner reads its own pricing (the default here), not another's.
    let own: Value = app
        .get_with_token(&format!("/api/v1/partners/{}/pricing", p.id), &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["source"], "default");
    assert_eq!(own["markup_bps"], 0);
    let res = app
        .get_with_token(&format!("/api/v1/partners/{}/pricing", other.id), &p.token)
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
}

#[tokio::test]
async fn the_markup_report_equals_the_conversions_own_markups_without_cancelled_ones() {
    let app = spawn_app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let a = app.partner().await;
    let b = app.partner().await;
    priced(&app, &admin.token, a.id, json!({"markup_bps": 25})).await;
    priced(
        &app,
        &admin.token,
        b.id,
        json!({"markup_bps": 60, "pairs": {"GBP/USD": 7}}),
    )
    .await;
    let mut cancelled = None;
    for (p, from, to, amount) in [
        (&a, "EUR", "USD", "1000.00"),
        (&a, "EUR", "USD", "33.33"),
        (&a, "GBP", "USD", "10.00"),
        (&b, "EUR", "USD", "1000.00"),
        (&b, "GBP", "USD", "77.77"),
        (&b, "EUR", "JPY", "12.34"),
    ] {
        let c: Value = app
            .convert(&p.token, from, to, amount)
            .await
            .json()
            .await
            .unwrap();
        cancelled.get_or_insert(c["id"].as_str().unwrap().to_owned());
    }
    let batch: Value = app
        .convert_batch(
            &a.token,
            json!([{"from": "EUR", "to": "JPY", "amount": "5.55"}, {"from": "EUR", "to": "USD", "amount": "0.99"}]),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(batch["conversions"].as_array().unwrap().len(), 2);
    let id = cancelled.unwrap();
    assert_eq!(app.cancel(&a.token, &id).await.status(), 200);

    // The expectation, from the stored conversions themselves.
    let expected: Vec<(uuid::Uuid, String, i64, BigDecimal)> = sqlx::query_as(
        "SELECT partner_id, to_currency, count(*), sum(markup_amount) FROM conversions
         WHERE status <> 'cancelled' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(expected.iter().any(|e| e.3 > 0));
    let today = app.clock.now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let report: Value = app
        .get_with_token(
            &format!("/api/v1/reports/markup?from={today}&to={tomorrow}&group_by=partner"),
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let mut got: Vec<(uuid::Uuid, String, i64, BigDecimal)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["partner_id"].as_str().unwrap().parse().unwrap(),
                l["currency"].as_str().unwrap().to_owned(),
                l["conversions"].as_i64().unwrap(),
                dec(&l["markup_amount"]),
            )
        })
        .collect();
    got.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    assert_eq!(got, expected);

    // By currency, the partners' sums; the CSV says the same.
    let by_currency: Value = app
        .get_with_token(
            &format!("/api/v1/reports/markup?from={today}&to={tomorrow}&group_by=currency"),
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let usd: BigDecimal = expected
        .iter()
        .filter(|e| e.1 == "USD")
        .map(|e| e.3.clone())
        .sum();
    let line = by_currency["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["currency"] == "USD")
        .unwrap();
    assert_eq!(dec(&line["markup_amount"]), usd);
    let csv = app
        .get_with_token(
            &format!(
                "/api/v1/reports/markup?from={today}&to={tomorrow}&group_by=currency&format=csv"
            ),
            &admin.token,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("partner_id,day,currency,conversions,markup_amount\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            ",USD,{},{}",
            line["conversions"],
            usd.with_scale(2)
        )),
        "{csv}"
    );
    // The partner's own summary by pair shows the same markup.
    let summary: Value = app
        .get_with_token(
            "/api/v1/conversions/summary?group_by=currency_pair",
            &b.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let gbp_usd = summary["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from"] == "GBP")
        .unwrap();
    // 77.77 GBP at (1.1/0.85) less 7 bp.
    let c: Vec<BigDecimal> = sqlx::query_scalar(
        "SELECT markup_amount FROM conversions WHERE partner_id = $1 AND from_currency = 'GBP'",
    )
    .bind(b.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(dec(&gbp_usd["markup_amount"]), c[0]);
    // Partners do not read the report.
    let res = app
        .get_with_token(
            &format!("/api/v1/reports/markup?from={today}&to={tomorrow}"),
            &a.token,
        )
        .await;
    assert_eq!(res.status(), 403);
}

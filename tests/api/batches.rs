//! Batch conversions: all or nothing, every bad item reported, request order, idempotency.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app_with_rates};

#[tokio::test]
async fn a_batch_converts_every_item_in_request_order() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let quote = app
        .quoted(&partner.token, "EUR", "USD", Some("10.00"), "hour")
        .await;
    let res = app
        .convert_batch(
            &partner.token,
            json!([
                {"from": "EUR", "to": "USD", "amount": "100.00"},
                {"from": "GBP", "to": "JPY", "amount": "3"},
                {"from": "EUR", "to": "USD", "amount": "10.00", "quote_id": quote["id"]},
                {"from": "EUR", "to": "USD", "amount": "1.00"},
            ]),
            None,
        )
        .await;
    assert_eq!(res.status(), 201);
    let batch: Value = res.json().await.unwrap();
    let c = batch["conversions"].as_array().unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(
        (c[0]["amount"].clone(), c[0]["result"].clone()),
        (json!("100.00"), json!("110.00"))
    );
    assert_eq!(
        (c[1]["from"].clone(), c[1]["to"].clone()),
        (json!("GBP"), json!("JPY"))
    );
    assert_eq!(c[1]["result"], "577");
    assert_eq!(c[2]["quote_id"], quote["id"]);
    assert_eq!(c[2]["rate"], quote["rate"]);
    assert_eq!(c[2]["result"], quote["result"]);
    assert_eq!(c[3]["amount"], "1.00");
    assert!(c.iter().all(|c| c["status"] == "temporary"));
    assert_eq!(app.stored_conversions().await, 4);
    // Each is an ordinary conversion the partner can read.
    let one = app.get_conversion(&partner.token, &c[1]["id"]).await;
    assert_eq!(one.status(), 200);
}

#[tokio::test]
async fn one_bad_item_stores_nothing_and_every_bad_item_is_listed() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let fixed = app
        .quoted(&partner.token, "EUR", "USD", Some("10.00"), "hour")
        .await;
    let expired = app.quoted(&partner.token, "EUR", "USD", None, "none").await;
    let res = app
        .convert_batch(
            &partner.token,
            json!([
                {"from": "EUR", "to": "USD", "amount": "1.00"},
                {"from": "EUR", "to": "USD", "amount": "1.001"},
                {"from": "EUR", "to": "XXX", "amount": "1.00"},
                {"from": "EUR", "to": "USD", "amount": "1.00", "quote_id": expired["id"]},
                {"from": "EUR", "to": "USD", "amount": "10.00", "quote_id": fixed["id"]},
                {"from": "EUR", "to": "USD"},
                {"from": "EUR", "to": "USD", "amount": "10.00", "quote_id": fixed["id"]},
            ]),
            None,
        )
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "items[1].amount",
            "items[2].to",
            "items[3].quote_id",
            "items[5].amount",
            "items[6].quote_id",
        ],
        "{problem}"
    );
    assert_eq!(app.stored_conversions().await, 0);
    // The single-use quote item 4 would have taken is still unused.
    let q: Value = app
        .get_quote(&partner.token, &fixed["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q["status"], "active");
}

#[tokio::test]
async fn a_batch_of_a_thousand_is_stored_whole_and_larger_or_empty_ones_are_refused() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let items: Vec<Value> = (1..=1000)
        .map(|i| json!({"from": "EUR", "to": "USD", "amount": format!("{i}.00")}))
        .collect();
    let res = app
        .convert_batch(&partner.token, json!(items), Some("thousand"))
        .await;
    assert_eq!(res.status(), 201);
    let batch: Value = res.json().await.unwrap();
    let amounts: Vec<&str> = batch["conversions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts.len(), 1000);
    assert_eq!((amounts[0], amounts[999]), ("1.00", "1000.00"));
    assert_eq!(app.stored_conversions().await, 1000);

    let mut too_many = items.clone();
    too_many.push(json!({"from": "EUR", "to": "USD", "amount": "1.00"}));
    let res = app
        .convert_batch(&partner.token, json!(too_many), None)
        .await;
    let problem = assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "items");
    let res = app.convert_batch(&partner.token, json!([]), None).await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(app.stored_conversions().await, 1000);
}

#[tokio::test]
async fn a_replayed_batch_returns_the_original_and_a_changed_one_is_refused() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let items = json!([
        {"from": "EUR", "to": "USD", "amount": "5.00"},
        {"from": "EUR", "to": "GBP", "amount": "6.00"},
    ]);
    let first = app
        .convert_batch(&partner.token, items.clone(), Some("batch-7"))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app
        .convert_batch(&partner.token, items.clone(), Some("batch-7"))
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let ids = |b: &Value| -> Vec<Value> {
        b["conversions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    let changed = app
        .convert_batch(
            &partner.token,
            json!([{"from": "EUR", "to": "USD", "amount": "5.00"}]),
            Some("batch-7"),
        )
        .await;
    assert_problem(changed, 422, "/problems/idempotency-key-reused").await;
    // Another partner's key is its own.
    let other = app.partner().await;
    let theirs = app
        .convert_batch(&other.token, items, Some("batch-7"))
        .await;
    assert_eq!(theirs.status(), 201);
    assert_eq!(app.stored_conversions().await, 4);
}

#[tokio::test]
async fn concurrent_batches_with_one_key_store_one_batch() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let items = json!([
        {"from": "EUR", "to": "USD", "amount": "5.00"},
        {"from": "EUR", "to": "JPY", "amount": "6.00"},
    ]);
    let attempts = (0..6).map(|_| app.convert_batch(&partner.token, items.clone(), Some("race")));
    let mut statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 201]);
    assert_eq!(app.stored_conversions().await, 2);
}

#[tokio::test]
async fn concurrent_batches_cannot_both_use_one_single_use_quote() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let quote = app
        .quoted(&partner.token, "EUR", "USD", Some("3.00"), "hour")
        .await;
    let items = json!([
        {"from": "EUR", "to": "GBP", "amount": "1.00"},
        {"from": "EUR", "to": "USD", "amount": "3.00", "quote_id": quote["id"]},
    ]);
    let attempts = (0..4).map(|_| app.convert_batch(&partner.token, items.clone(), None));
    let mut statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422, 422, 422]);
    assert_eq!(app.stored_conversions().await, 2);
}

/// `value` as a JSON text of exactly `len` bytes: padded with spaces, which JSON ignores.
fn padded(value: &Value, len: usize) -> String {
    let mut text = value.to_string();
    assert!(text.len() <= len, "{} bytes before padding", text.len());
    text.push_str(&" ".repeat(len - text.len()));
    text
}

async fn post_text(
    app: &crate::helpers::TestApp,
    path: &str,
    token: &str,
    body: String,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The README's limit for a batch body: 1,000 items of up to 512 bytes each.
const BATCH_BODY_LIMIT: usize = 512_000;

#[tokio::test]
async fn a_batch_body_is_accepted_up_to_its_documented_limit_and_refused_one_byte_over() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let items: Vec<Value> = (0..1000)
        .map(|_| json!({"from": "EUR", "to": "USD", "amount": "1.00"}))
        .collect();
    let body = json!({ "items": items });

    let res = post_text(
        &app,
        "/api/v1/conversions/batch",
        &partner.token,
        padded(&body, BATCH_BODY_LIMIT),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(app.stored_conversions().await, 1000);

    let res = post_text(
        &app,
        "/api/v1/conversions/batch",
        &partner.token,
        padded(&body, BATCH_BODY_LIMIT + 1),
    )
    .await;
    assert_problem(res, 413, "/problems/payload-too-large").await;
    assert_eq!(app.stored_conversions().await, 1000);
}

#[tokio::test]
async fn other_bodies_keep_the_server_wide_limit_at_its_boundary() {
    let app = spawn_app_with_rates(|_| {}).await;
    let limit = app.settings.server.body_limit_bytes;
    assert!(limit < BATCH_BODY_LIMIT);
    let partner = app.partner().await;
    let body = json!({"from": "EUR", "to": "USD", "amount": "1.00"});

    let res = post_text(
        &app,
        "/api/v1/conversions",
        &partner.token,
        padded(&body, limit),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    let res = post_text(
        &app,
        "/api/v1/conversions",
        &partner.token,
        padded(&body, limit + 1),
    )
    .await;
    assert_problem(res, 413, "/problems/payload-too-large").await;
    assert_eq!(app.stored_conversions().await, 1);
}

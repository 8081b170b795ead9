//! `Idempotency-Key` on every idempotent POST (conversions, batches, quotes, webhook
//! endpoints): one mechanism, so the same rules everywhere. Replays return the original with
//! 200, a key reused with another body is 422 `/problems/idempotency-key-reused`, and a key of
//! one operation does not clash with the same key of another.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with_rates};

const CONVERSIONS: &str = "/api/v1/conversions";
const BATCHES: &str = "/api/v1/conversions/batch";
const QUOTES: &str = "/api/v1/quotes";
const WEBHOOKS: &str = "/api/v1/webhooks";

fn conversion(amount: &str) -> Value {
    json!({"from": "EUR", "to": "USD", "amount": amount})
}

fn batch(amount: &str) -> Value {
    json!({"items": [conversion("1.00"), {"from": "EUR", "to": "GBP", "amount": amount}]})
}

fn quote(amount: &str) -> Value {
    json!({"from": "EUR", "to": "USD", "amount": amount, "lock": "hour"})
}

fn endpoint(events: Value) -> Value {
    json!({"url": "https://partner.example/hooks", "events": events})
}

/// Sends `body` with `key` and returns the status and the answer.
async fn send(app: &TestApp, path: &str, token: &str, body: &Value, key: &str) -> (u16, Value) {
    let res = app.post_idempotently(path, token, body, key).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// How many quotes, webhook endpoints and idempotency keys are stored.
async fn counts(app: &TestApp) -> (i64, i64, i64) {
    let row = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM quotes) AS "quotes!",
                  (SELECT count(*) FROM webhook_endpoints) AS "endpoints!",
                  (SELECT count(*) FROM idempotency_keys) AS "keys!""#
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    (row.quotes, row.endpoints, row.keys)
}

#[tokio::test]
async fn an_amount_written_with_more_zeros_is_a_replay_of_a_conversion_and_of_a_batch() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    for (path, body) in [
        (CONVERSIONS, conversion as fn(&str) -> Value),
        (BATCHES, batch),
    ] {
        let (status, first) = send(&app, path, &partner.token, &body("100.0"), "k-100").await;
        assert_eq!(status, 201, "{path}: {first}");
        let (status, again) = send(&app, path, &partner.token, &body("100.00"), "k-100").await;
        assert_eq!(status, 200, "{path}: {again}");
        assert_eq!(first, again, "{path}");
        let (status, _) = send(&app, path, &partner.token, &body("100.01"), "k-100").await;
        assert_eq!(status, 422, "{path}");
    }
    // One single conversion and one batch of two.
    assert_eq!(app.stored_conversions().await, 3);
}

#[tokio::test]
async fn every_idempotent_post_replays_with_200_and_refuses_a_reused_key_with_422() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let cases = [
        (CONVERSIONS, conversion("5.00"), conversion("6.00")),
        (BATCHES, batch("5.00"), batch("6.00")),
        (QUOTES, quote("5.00"), quote("6.00")),
        (
            WEBHOOKS,
            endpoint(json!(["conversion.created", "conversion.finalized"])),
            endpoint(json!(["conversion.created"])),
        ),
    ];
    for (path, body, other) in cases {
        let (status, first) = send(&app, path, &partner.token, &body, "order-1").await;
        assert_eq!(status, 201, "{path}: {first}");
        let (status, again) = send(&app, path, &partner.token, &body, "order-1").await;
        assert_eq!(status, 200, "{path}: {again}");
        assert_eq!(again["id"], first["id"], "{path}");
        let res = app
            .post_idempotently(path, &partner.token, &other, "order-1")
            .await;
        assert_problem(res, 422, "/problems/idempotency-key-reused").await;
        // Another partner's identical key is its own.
        let someone = app.partner().await;
        let (status, theirs) = send(&app, path, &someone.token, &body, "order-1").await;
        assert_eq!(status, 201, "{path}: {theirs}");
        assert_ne!(theirs["id"], first["id"], "{path}");
    }
    assert_eq!(counts(&app).await, (2, 2, 8));
    // A conversion and a batch of two, for each of two partners.
    assert_eq!(app.stored_conversions().await, 6);
}

/// A replayed registration answers with the endpoint's secret, so that a client that lost the
/// first answer can still verify deliveries; and the same events in another order are the same
/// request.
#[tokio::test]
async fn a_replayed_webhook_registration_returns_the_endpoint_and_its_secret() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let events = json!(["conversion.created", "conversion.finalized"]);
    let (status, first) = send(&app, WEBHOOKS, &partner.token, &endpoint(events), "hook").await;
    assert_eq!(status, 201);
    let reordered = endpoint(json!(["conversion.finalized", "conversion.created"]));
    let (status, again) = send(&app, WEBHOOKS, &partner.token, &reordered, "hook").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first);
    assert!(first["secret"].as_str().unwrap().starts_with("whsec_"));
}

#[tokio::test]
async fn one_key_in_every_scope_creates_one_resource_in_each() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let bodies = [
        (CONVERSIONS, conversion("5.00")),
        (BATCHES, batch("5.00")),
        (QUOTES, quote("5.00")),
        (WEBHOOKS, endpoint(json!(["conversion.created"]))),
    ];
    for (path, body) in &bodies {
        let (status, created) = send(&app, path, &partner.token, body, "shared-key").await;
        assert_eq!(status, 201, "{path}: {created}");
    }
    for (path, body) in &bodies {
        let (status, _) = send(&app, path, &partner.token, body, "shared-key").await;
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(app.stored_conversions().await, 3);
    assert_eq!(counts(&app).await, (1, 1, 4));
}

#[tokio::test]
async fn parallel_requests_with_one_key_create_one_quote_and_one_webhook_endpoint() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    for (path, body) in [
        (QUOTES, quote("7.00")),
        (WEBHOOKS, endpoint(json!(["conversion.created"]))),
    ] {
        let attempts = (0..6).map(|_| send(&app, path, &partner.token, &body, "race"));
        let answers = join_all(attempts).await;
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 200, 200, 200, 200, 201], "{path}");
        let ids: std::collections::HashSet<String> =
            answers.iter().map(|(_, b)| b["id"].to_string()).collect();
        assert_eq!(ids.len(), 1, "{path}");
    }
    assert_eq!(counts(&app).await, (1, 1, 2));
}

/// The keys of the two tables `idempotency_keys` replaced move over with the migration that
/// made it, their hashes rewritten from the conversions they created: a retry after the
/// upgrade is still a replay. The old tables are rebuilt here as their migrations made them,
/// filled as the old code filled them (hashes in the old encodings), and the migration is run
/// again on them.
#[tokio::test]
async fn keys_stored_before_the_one_table_still_replay_after_the_migration() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let (_, single) = send(
        &app,
        CONVERSIONS,
        &partner.token,
        &conversion("5.00"),
        "old-1",
    )
    .await;
    let (_, batched) = send(&app, BATCHES, &partner.token, &batch("5.00"), "old-2").await;
    let locked = app
        .quoted(&partner.token, "EUR", "USD", Some("3.00"), "hour")
        .await;
    let on_quote = json!({"from": "EUR", "to": "USD", "amount": "3.00", "quote_id": locked["id"]});
    let (status, on_quote_first) =
        send(&app, CONVERSIONS, &partner.token, &on_quote, "old-3").await;
    assert_eq!(status, 201);
    let (_, expired) = send(
        &app,
        CONVERSIONS,
        &partner.token,
        &conversion("9.00"),
        "old-4",
    )
    .await;

    // Runtime SQL: test-only DDL, the schema before the migration. Without the old foreign key
    // to conversions (id): since `conversions` is partitioned (migration 20261207300000) its
    // key is (id, created_at), which a foreign key on the id alone cannot reference; the
    // migration under test reads the ids, not the constraint.
    sqlx::raw_sql(
        r#"CREATE TABLE conversion_idempotency_keys (
               partner_id    uuid        NOT NULL REFERENCES users (id),
               key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
               request_hash  bytea       NOT NULL,
               conversion_id uuid        NOT NULL,
               created_at    timestamptz NOT NULL,
               expires_at    timestamptz NOT NULL,
               PRIMARY KEY (partner_id, key));
           CREATE TABLE conversion_batch_idempotency_keys (
               partner_id   uuid        NOT NULL REFERENCES users (id),
               key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
               request_hash bytea       NOT NULL,
               batch_id     uuid        NOT NULL REFERENCES conversion_batches (id) DEFERRABLE INITIALLY DEFERRED,
               created_at   timestamptz NOT NULL,
               expires_at   timestamptz NOT NULL,
               PRIMARY KEY (partner_id, key));
           INSERT INTO conversion_idempotency_keys
               SELECT partner_id, key, sha256(convert_to('EUR|USD|5.00', 'UTF8')), resource_id,
                      created_at, CASE WHEN key = 'old-4' THEN now() - interval '1 second'
                                       ELSE expires_at END
               FROM idempotency_keys WHERE scope = 'conversion';
           INSERT INTO conversion_batch_idempotency_keys
               SELECT partner_id, key, sha256(convert_to('raw batch text', 'UTF8')), resource_id,
                      created_at, expires_at
               FROM idempotency_keys WHERE scope = 'batch';
           DROP TABLE idempotency_keys;"#,
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!(
        "../../migrations/20261206400100_one_table_of_idempotency_keys.sql"
    ))
    .execute(&app.db)
    .await
    .unwrap();

    assert_eq!(counts(&app).await.2, 3, "the expired key is left behind");
    let (status, again) = send(
        &app,
        CONVERSIONS,
        &partner.token,
        &conversion("5.0"),
        "old-1",
    )
    .await;
    assert_eq!((status, &again["id"]), (200, &single["id"]));
    let (status, again) = send(&app, BATCHES, &partner.token, &batch("5.00"), "old-2").await;
    assert_eq!((status, &again["id"]), (200, &batched["id"]));
    let (status, again) = send(&app, CONVERSIONS, &partner.token, &on_quote, "old-3").await;
    assert_eq!((status, &again["id"]), (200, &on_quote_first["id"]));
    let res = app
        .post_idempotently(CONVERSIONS, &partner.token, &conversion("6.00"), "old-1")
        .await;
    assert_problem(res, 422, "/problems/idempotency-key-reused").await;
    let (status, fresh) = send(
        &app,
        CONVERSIONS,
        &partner.token,
        &conversion("8.00"),
        "old-4",
    )
    .await;
    assert_eq!(status, 201);
    assert_ne!(fresh["id"], expired["id"]);
}

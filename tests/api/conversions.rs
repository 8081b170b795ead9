use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// EUR-pivot rates as a provider would publish them (units per 1 EUR).
const RATES: &[(&str, &str)] = &[
    ("USD", "1.1"),
    ("EGP", "53.65"),
    ("JPY", "163.5"),
    ("KWD", "0.3372"),
    ("GBP", "0.85"),
];

pub(crate) async fn app_with_rates(
    customise: impl FnOnce(&mut currency_conversion::settings::Settings),
) -> TestApp {
    let app = spawn_app_with(customise).await;
    app.seed_currencies().await;
    currency_conversion::currencies::service::add(
        &app.db,
        currency_conversion::currencies::service::AddCurrency {
            code: "KWD".parse().unwrap(),
            name: None,
            minor_units: None,
            iso: None,
            enabled: None,
        },
        app.clock.now(),
    )
    .await
    .unwrap();
    app.store_rates(RATES).await;
    app
}

#[tokio::test]
async fn a_partner_converts_and_gets_a_temporary_reproducible_result() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let res = app.convert(&partner.token, "eur", "usd", "100.00").await;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/api/v1/conversions/")
    );
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["from"], "EUR");
    assert_eq!(c["to"], "USD");
    assert_eq!(c["amount"], "100.00");
    assert_eq!(c["rate"], "1.1");
    assert_eq!(c["result"], "110.00");
    assert_eq!(c["status"], "temporary");
    let created = chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap()).unwrap();
    let finalizes =
        chrono::DateTime::parse_from_rfc3339(c["finalizes_at"].as_str().unwrap()).unwrap();
    assert_eq!((finalizes - created).num_hours(), 48);

    // Cross rate through the EUR pivot: EGP→USD = 1.1 / 53.65.
    let res = app.convert(&partner.token, "EGP", "USD", "100.00").await;
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["rate"], "0.0205032618825722274");
    assert_eq!(c["result"], "2.05");
    // Stored with references to the exact quote rows used.
    let (from_quote, to_quote): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT from_quote_id, to_quote_id FROM conversions WHERE id = $1::uuid")
            .bind(c["id"].as_str().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(from_quote.is_some() && to_quote.is_some());
}

#[tokio::test]
async fn results_round_toward_zero_to_the_target_minor_units() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    // JPY has 0 decimals: 10.01 EUR × 163.5 = 1636.635 → 1636, never more than amount × rate
    let c: Value = app
        .convert(&partner.token, "EUR", "JPY", "10.01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["result"], "1636");
    // KWD has 3 decimals: 12.34 EUR × 0.3372 = 4.161048 → 4.161
    let c: Value = app
        .convert(&partner.token, "EUR", "KWD", "12.34")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["result"], "4.161");
    // JPY source: whole yen only.
    let res = app.convert(&partner.token, "JPY", "EUR", "100.5").await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    // KWD accepts three decimals.
    assert_eq!(
        app.convert(&partner.token, "KWD", "EUR", "1.234")
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn bad_conversion_requests_get_clear_problems_and_store_nothing() {
    let app = app_with_rates(|s| s.conversions.max_amount = "1000000".parse().unwrap()).await;
    let partner = app.partner().await;
    for (from, to, amount) in [
        ("EUR", "USD", "0"),
        ("EUR", "USD", "-5"),
        ("EUR", "USD", "abc"),
        ("EUR", "USD", "1e5"),
        ("EUR", "USD", "1.001"),
        ("EUR", "USD", "1000000.01"),
        ("EUR", "US", "1"),
        ("EUR", "EUR", "1"),
    ] {
        let res = app.convert(&partner.token, from, to, amount).await;
        assert_problem(res, 422, "/problems/validation-failed").await;
    }
    let res = app.convert(&partner.token, "EUR", "CHF", "1").await;
    assert_eq!(res.status(), 404, "a currency that is not supported");
    let res = app
        .post_json(
            "/api/v1/conversions",
            &json!({"from": "EUR", "to": "USD", "amount": 100.0}),
            Some(&partner.token),
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
    assert_eq!(app.stored_conversions().await, 0);
}

#[tokio::test]
async fn disabled_and_retired_currencies_are_refused_for_new_conversions_but_history_stays() {
    let app = app_with_rates(|_| {}).await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let c: Value = app
        .convert(&partner.token, "EUR", "GBP", "10.00")
        .await
        .json()
        .await
        .unwrap();
    // GBP is referenced by rates and a conversion: delete retires it.
    let res = app.delete("/api/v1/currencies/GBP", &admin.token).await;
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome["outcome"], "retired");
    let res = app.convert(&partner.token, "EUR", "GBP", "10.00").await;
    assert_problem(res, 422, "/problems/currency-retired").await;
    let old = app.get_conversion(&partner.token, &c["id"]).await;
    assert_eq!(old.status(), 200);
    app.patch_json(
        "/api/v1/currencies/JPY",
        &json!({"enabled": false}),
        &admin.token,
    )
    .await;
    let res = app.convert(&partner.token, "EUR", "JPY", "10.00").await;
    assert_problem(res, 422, "/problems/currency-disabled").await;
}

#[tokio::test]
async fn stale_rates_are_refused_or_flagged_per_settings() {
    let app = app_with_rates(|s| s.rates.max_age_secs = 3600).await;
    app.clock.advance(chrono::Duration::hours(2));
    let partner = app.partner().await;
    let res = app.convert(&partner.token, "EUR", "USD", "1.00").await;
    assert_problem(res, 422, "/problems/stale-rate").await;

    let lenient = app_with_rates(|s| {
        s.rates.max_age_secs = 3600;
        s.conversions.stale_rates = currency_conversion::settings::StaleRatePolicy::Allow;
    })
    .await;
    lenient.clock.advance(chrono::Duration::hours(2));
    let partner = lenient.partner().await;
    let c: Value = lenient
        .convert(&partner.token, "EUR", "USD", "1.00")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["stale_rate"], true);
}

#[tokio::test]
async fn idempotency_keys_return_the_original_and_refuse_a_different_body() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let body = json!({"from": "EUR", "to": "USD", "amount": "5.00"});
    let first = app
        .convert_idempotently(&partner.token, &body, "order-42")
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app
        .convert_idempotently(&partner.token, &body, "order-42")
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let other = app
        .convert_idempotently(
            &partner.token,
            &json!({"from": "EUR", "to": "USD", "amount": "6.00"}),
            "order-42",
        )
        .await;
    assert_problem(other, 422, "/problems/idempotency-key-reused").await;
    // Another partner's identical key is its own.
    let someone = app.partner().await;
    let res = app
        .convert_idempotently(&someone.token, &body, "order-42")
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_store_one_row() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let body = json!({"from": "EUR", "to": "USD", "amount": "7.00"});
    let requests: Vec<_> = (0..10)
        .map(|_| app.convert_idempotently(&partner.token, &body, "same-key"))
        .collect();
    let mut ids = std::collections::HashSet::new();
    for res in join_all(requests).await {
        assert!(
            res.status() == 201 || res.status() == 200,
            "{}",
            res.status()
        );
        let c: Value = res.json().await.unwrap();
        ids.insert(c["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.stored_conversions().await, 1);
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    futures_util::future::join_all(handles).await
}

#[tokio::test]
async fn finalization_after_the_holding_period_runs_twice_without_double_effect() {
    let app = app_with_rates(|s| s.conversions.holding_period_secs = 60).await;
    let partner = app.partner().await;
    let c: Value = app
        .convert(&partner.token, "EUR", "USD", "1.00")
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap(),
        0
    );
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap(),
        0
    );
    let c: Value = app
        .get_with_token(&format!("/api/v1/conversions/{id}"), &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "permanent");
    assert!(c["finalized_at"].is_string());
    let res = app
        .post_json(
            &format!("/api/v1/conversions/{id}/cancel"),
            &json!({}),
            Some(&partner.token),
        )
        .await;
    assert_problem(res, 409, "/problems/conflict").await;
}

#[tokio::test]
async fn a_partner_cancels_a_temporary_conversion_once() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let c: Value = app
        .convert(&partner.token, "EUR", "USD", "1.00")
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap();
    let res = app.cancel(&partner.token, id).await;
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["status"], "cancelled");
    assert!(c["cancelled_at"].is_string());
    // Cancelling again is harmless; finalizing later leaves it cancelled.
    let res = app.cancel(&partner.token, id).await;
    assert_eq!(res.status(), 200);
    app.clock.advance(chrono::Duration::hours(49));
    assert_eq!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_cancel_after_the_holding_period_is_refused_as_finalizing_before_the_job_runs() {
    let app = app_with_rates(|s| s.conversions.holding_period_secs = 60).await;
    let partner = app.partner().await;
    let c: Value = app
        .convert(&partner.token, "EUR", "USD", "1.00")
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap().to_owned();
    // The finalize job is late (Redis down, worker dead): the holding period still ends on time.
    app.clock.advance(chrono::Duration::seconds(80));
    let res = app
        .post_json(
            &format!("/api/v1/conversions/{id}/cancel"),
            &json!({}),
            Some(&partner.token),
        )
        .await;
    let problem = assert_problem(res, 409, "/problems/conversion-finalizing").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("finalized"),
        "{problem}"
    );
    let c: Value = app
        .get_with_token(&format!("/api/v1/conversions/{id}"), &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "temporary");
    assert_eq!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn cancel_racing_finalize_across_the_boundary_agrees_with_the_database() {
    let app = app_with_rates(|s| s.conversions.holding_period_secs = 60).await;
    let partner = app.partner().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let c: Value = app
            .convert(&partner.token, "EUR", "USD", "1.00")
            .await
            .json()
            .await
            .unwrap();
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    // One millisecond before the boundary; the clock crosses it while cancels are in flight and
    // finalize runs, so some cancels see the holding period open and some see it closed.
    app.clock
        .advance(chrono::Duration::seconds(60) - chrono::Duration::milliseconds(1));
    let cancels: Vec<_> = ids
        .iter()
        .map(|id| {
            app.post_json_owned(
                format!("/api/v1/conversions/{id}/cancel"),
                partner.token.clone(),
            )
        })
        .collect();
    let finalize = async {
        tokio::task::yield_now().await;
        app.clock.advance(chrono::Duration::milliseconds(1));
        currency_conversion::conversions::service::finalize_due(&app.conversions()).await
    };
    let (results, finalized) = tokio::join!(join_all(cancels), finalize);
    let finalized = finalized.unwrap();
    // Anything finalize skipped (a row a cancel held) is due now.
    let finalized = finalized
        + currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap();
    for (id, status) in ids.iter().zip(&results) {
        let (db_status, cancelled_before_boundary): (String, Option<bool>) = sqlx::query_as(
            "SELECT status, cancelled_at < finalizes_at FROM conversions WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        match status {
            200 => {
                assert_eq!(db_status, "cancelled", "{id}");
                assert_eq!(cancelled_before_boundary, Some(true), "{id}");
            }
            409 => assert_eq!(db_status, "permanent", "{id}"),
            other => panic!("cancel of {id} answered {other}"),
        }
    }
    let permanent = results.iter().filter(|s| **s == 409).count() as u64;
    assert_eq!(permanent, finalized);
}

pub(crate) async fn fresh_token(app: &TestApp, email: &str) -> String {
    app.login(email, crate::helpers::TEST_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The currencies are checked against the in-memory rates cache and again, in the storing
/// statement, against PostgreSQL: a currency disabled or retired behind this instance's back
/// (another instance, or SQL) is refused at once and nothing is stored.
#[tokio::test]
async fn a_currency_disabled_behind_the_cache_is_refused_at_once_and_nothing_is_stored() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    // Warms the cache with JPY and GBP usable.
    for to in ["JPY", "GBP"] {
        assert_eq!(
            app.convert(&partner.token, "EUR", to, "1.00")
                .await
                .status(),
            201
        );
    }
    sqlx::query("UPDATE currencies SET enabled = false WHERE code = 'JPY'")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE currencies SET retired_at = now(), enabled = false WHERE code = 'GBP'")
        .execute(&app.db)
        .await
        .unwrap();
    let res = app.convert(&partner.token, "EUR", "JPY", "1.00").await;
    assert_problem(res, 422, "/problems/currency-disabled").await;
    let res = app
        .convert_idempotently(
            &partner.token,
            &json!({"from": "GBP", "to": "EUR", "amount": "1.00"}),
            "behind-the-cache",
        )
        .await;
    assert_problem(res, 422, "/problems/currency-retired").await;
    assert_eq!(app.stored_conversions().await, 2);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, 0, "a refused conversion claims no key");
}

/// A key past `conversions.idempotency_ttl_secs` is free again: the same key with another body
/// makes a new conversion instead of being refused.
#[tokio::test]
async fn an_expired_idempotency_key_is_free_for_a_new_conversion() {
    let app = app_with_rates(|s| {
        s.conversions.idempotency_ttl_secs = 60;
        s.conversions.stale_rates = currency_conversion::settings::StaleRatePolicy::Allow;
    })
    .await;
    let partner = app.partner().await;
    let body = |amount: &str| json!({"from": "EUR", "to": "USD", "amount": amount});
    let first = app
        .convert_idempotently(&partner.token, &body("5.00"), "order-7")
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let early = app
        .convert_idempotently(&partner.token, &body("6.00"), "order-7")
        .await;
    assert_problem(early, 422, "/problems/idempotency-key-reused").await;
    app.clock.advance(chrono::Duration::seconds(61));
    let token = fresh_token(&app, &partner.email).await;
    let later = app
        .convert_idempotently(&token, &body("6.00"), "order-7")
        .await;
    assert_eq!(later.status(), 201);
    let later: Value = later.json().await.unwrap();
    assert_ne!(later["id"], first["id"]);
    assert_eq!(later["amount"], "6.00");
    // And the key now stands for the new conversion.
    let replay = app
        .convert_idempotently(&token, &body("6.00"), "order-7")
        .await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], later["id"]);
}

/// `conversions::store::create` writes the `conversion.created` event and its deliveries in its
/// own single statement, a copy of `webhooks::outbox::record`'s SQL (checked SQL needs literal
/// text, so the two cannot share it). This keeps the copy honest: a conversion made through
/// `POST /conversions` must leave exactly the rows `outbox::record` writes for it, column by
/// column (ids aside), for a partner with subscribed, unsubscribed and deleted endpoints and
/// another partner subscribed too.
#[tokio::test]
async fn a_conversion_writes_the_same_webhook_rows_as_the_outbox() {
    use currency_conversion::auth::PartnerId;
    use currency_conversion::webhooks::{EventType, outbox};

    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let register = |token: String, events: Value| {
        let app = &app;
        async move {
            let res = app
                .post_json(
                    "/api/v1/webhooks",
                    &json!({"url": "http://127.0.0.1:9/hook", "events": events}),
                    Some(&token),
                )
                .await;
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()
        }
    };
    register(partner.token.clone(), json!(["conversion.created"])).await;
    register(
        partner.token.clone(),
        json!(["conversion.finalized", "conversion.created"]),
    )
    .await;
    register(partner.token.clone(), json!(["conversion.finalized"])).await;
    let deleted = register(partner.token.clone(), json!(["conversion.created"])).await;
    let res = app
        .delete(
            &format!("/api/v1/webhooks/{}", deleted["id"].as_str().unwrap()),
            &partner.token,
        )
        .await;
    assert!(res.status().is_success());
    register(other.token.clone(), json!(["conversion.created"])).await;

    // Rows as stored, without the generated ids, in a stable order.
    let rows = || async {
        let events: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(e) - 'id' FROM webhook_events e ORDER BY partner_id, payload",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        let deliveries: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(d) - 'id' - 'event_id' FROM webhook_deliveries d ORDER BY endpoint_id",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        (events, deliveries)
    };

    let res = app.convert(&partner.token, "EUR", "USD", "100.00").await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let by_post = rows().await;
    assert_eq!(by_post.0.len(), 1, "one event: {:?}", by_post.0);
    assert_eq!(
        by_post.1.len(),
        2,
        "a delivery per live subscribed endpoint"
    );

    sqlx::query("DELETE FROM webhook_events")
        .execute(&app.db)
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().parse().unwrap();
    let view = currency_conversion::conversions::service::get(&app.conversions(), id, None)
        .await
        .unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    outbox::record(
        &mut conn,
        EventType::ConversionCreated,
        view.created_at,
        [(PartnerId::from_uuid(view.partner_id), &view)],
    )
    .await
    .unwrap();
    assert_eq!(rows().await, by_post);
}

//! Fairness between receivers: a cap on attempts in flight per endpoint and per partner, partners
//! served by turns, and a circuit breaker per endpoint. Real receivers on local ports; the slow
//! one holds its requests until the test lets them go, so nothing here is timed.

use super::*;

/// Deliveries of `endpoint` per state, and their attempts in all.
async fn attempts_and_states(app: &TestApp, endpoint: &str) -> (i64, Vec<String>) {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempts, state FROM webhook_deliveries WHERE endpoint_id = $1::uuid ORDER BY id",
    )
    .bind(endpoint)
    .fetch_all(&app.db)
    .await
    .unwrap();
    (
        rows.iter().map(|(a, _)| i64::from(*a)).sum(),
        rows.into_iter().map(|(_, s)| s).collect(),
    )
}

/// The breaker of `endpoint` as `GET /webhooks` shows it.
async fn breaker(app: &TestApp, token: &str, endpoint: &str) -> Value {
    let list = app.list_webhooks(token).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == endpoint)
        .unwrap()["breaker"]
        .clone()
}

/// Before: one dispatcher claimed a batch (the slow partner's 20 deliveries, oldest first) and
/// waited for all of it, so the other partner's delivery waited for the slowest receiver. Now the
/// slow partner holds at most `max_in_flight_per_partner` slots (8) and 2 per endpoint, and the
/// other partner's delivery goes out beside them while they are still held.
#[tokio::test]
async fn a_slow_partner_holds_only_its_own_slots_and_another_partners_delivery_goes_out_meanwhile()
{
    let app = spawn_app_with_rates(|_| {}).await;
    assert_eq!(app.settings.webhooks.max_in_flight_per_endpoint, 2);
    assert_eq!(app.settings.webhooks.max_in_flight_per_partner, 8);
    let slow = GatedReceiver::start();
    let fast = Receiver::start();
    let slow_partner = app.partner().await;
    for name in ["a", "b", "c", "d", "e"] {
        app.register_webhook(
            &slow_partner.token,
            &slow.url_of(name),
            json!(["conversion.created"]),
        )
        .await;
    }
    for _ in 0..4 {
        convert(&app, &slow_partner).await;
    }
    let other = app.partner().await;
    app.register_webhook(&other.token, &fast.url(), json!(["conversion.created"]))
        .await;

    let webhooks = app.webhooks.clone();
    let dispatcher = tokio::spawn(async move { webhooks.dispatch_due().await });
    assert!(
        eventually(30, || async { slow.waiting() == 8 }).await,
        "the slow partner's attempts did not reach its cap: {} held",
        slow.waiting()
    );
    // The other partner's event falls due while the slow receivers hold every attempt.
    let conversion = convert(&app, &other).await;
    let arrived = eventually(30, || async { !fast.received().is_empty() }).await;
    assert!(
        arrived,
        "the other partner's delivery waited for the slow receivers"
    );
    assert_eq!(
        slow.waiting(),
        8,
        "the slow receivers were still holding their attempts"
    );
    assert_eq!(fast.received()[0].json()["data"]["id"], conversion["id"]);

    slow.open();
    let dispatched = dispatcher.await.unwrap();
    assert_eq!(dispatched.map_err(|e| format!("{e:#}")).unwrap(), 21);
    let (per_endpoint, in_all) = slow.most_at_once();
    assert!(
        per_endpoint <= 2,
        "{per_endpoint} attempts at once to one endpoint"
    );
    assert!(in_all <= 8, "{in_all} attempts at once for one partner");
    assert_eq!(slow.ids().len(), 20);
}

/// Two dispatchers (two instances) share the caps: together they never send one endpoint more
/// than its cap at once.
#[tokio::test]
async fn the_caps_hold_across_dispatchers() {
    let app = spawn_app_with_rates(|s| s.webhooks.max_in_flight_per_endpoint = 1).await;
    let slow = GatedReceiver::start();
    let partner = app.partner().await;
    app.register_webhook(&partner.token, &slow.url(), json!(["conversion.created"]))
        .await;
    for _ in 0..3 {
        convert(&app, &partner).await;
    }
    let (one, two) = (app.webhooks.clone(), app.webhooks.clone());
    let first = tokio::spawn(async move { one.dispatch_due().await });
    let second = tokio::spawn(async move { two.dispatch_due().await });
    assert!(eventually(30, || async { slow.waiting() == 1 }).await);
    slow.open();
    let attempts = first.await.unwrap().unwrap() + second.await.unwrap().unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(slow.most_at_once().0, 1);
}

/// After `breaker_failures` failed attempts in a row the endpoint is paused: its deliveries wait
/// (no attempt counted, none dead) while the partner's other endpoint keeps receiving; after the
/// cool-down one trial attempt goes out: a failure pauses it again, a 2xx closes it and the rest
/// follow.
#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_paused_then_tried_once_and_recovers() {
    let app = spawn_app_with_rates(|s| {
        s.webhooks.breaker_failures = 3;
        s.webhooks.breaker_cooldown_secs = 60;
    })
    .await;
    let failing = Receiver::start();
    failing.answer(500);
    let healthy = Receiver::start();
    let partner = app.partner().await;
    let bad = app
        .register_webhook(
            &partner.token,
            &failing.url(),
            json!(["conversion.created"]),
        )
        .await;
    let bad = id_of(&bad).to_owned();
    app.register_webhook(
        &partner.token,
        &healthy.url(),
        json!(["conversion.created"]),
    )
    .await;
    let closed = breaker(&app, &partner.token, &bad).await;
    assert_eq!(
        closed,
        json!({"state": "closed", "consecutive_failures": 0, "paused_until": null})
    );
    for _ in 0..5 {
        convert(&app, &partner).await;
    }

    app.dispatch_webhooks().await;
    // The third failure in a row opened it; an attempt already in flight then may fail too.
    let (attempts, states) = attempts_and_states(&app, &bad).await;
    assert!((3..=4).contains(&attempts), "{attempts} attempts");
    assert_eq!(i64::try_from(failing.received().len()).unwrap(), attempts);
    assert!(states.iter().all(|s| s == "pending"), "{states:?}");
    assert_eq!(
        healthy.received().len(),
        5,
        "the partner's other endpoint is not paused"
    );
    let open = breaker(&app, &partner.token, &bad).await;
    assert_eq!(open["state"], "open");
    assert_eq!(open["consecutive_failures"], attempts);
    assert!(open["paused_until"].is_string());

    // Their retries fall due, but the endpoint is paused: postponed, not attempted.
    app.clock.advance(TimeDelta::seconds(30));
    app.dispatch_webhooks().await;
    assert_eq!(attempts_and_states(&app, &bad).await.0, attempts);

    // Cool-down over: one trial attempt, which fails, and the pause starts again.
    app.clock.advance(TimeDelta::seconds(31));
    assert_eq!(
        breaker(&app, &partner.token, &bad).await["state"],
        "half_open"
    );
    app.dispatch_webhooks().await;
    assert_eq!(attempts_and_states(&app, &bad).await.0, attempts + 1);
    assert_eq!(breaker(&app, &partner.token, &bad).await["state"], "open");

    // The receiver is fixed: after the next cool-down the trial succeeds, the breaker closes and
    // every delivery goes out.
    failing.answer(200);
    app.clock.advance(TimeDelta::seconds(61));
    app.dispatch_webhooks().await;
    let (_, states) = attempts_and_states(&app, &bad).await;
    assert!(states.iter().all(|s| s == "delivered"), "{states:?}");
    assert_eq!(
        breaker(&app, &partner.token, &bad).await,
        json!({"state": "closed", "consecutive_failures": 0, "paused_until": null})
    );
}

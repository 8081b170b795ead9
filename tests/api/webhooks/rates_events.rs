//! `rates.degraded` and `rates.recovered`: written with the consensus observation that changes
//! a currency's state, once per change however many instances fetch at once, and delivered only
//! to partners subscribed to them. Five local Frankfurter stand-ins, as in `consensus`.

use currency_conversion::rates;

use super::*;
use crate::consensus::{five_sources, publish};
use crate::rates::frankfurter;

/// `(event type, currency)` of every rates event written, in order.
async fn rates_events(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT event_type, payload::jsonb #>> '{data,currency}' FROM webhook_events
         WHERE event_type LIKE 'rates.%'
         ORDER BY created_at, event_type, payload::jsonb #>> '{data,currency}'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_currency_falling_below_the_quorum_and_back_is_announced_once_to_subscribers() {
    let (app, s, day) = five_sources().await;
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let subscriber = app.partner().await;
    let other = app.partner().await;
    let receiver = Receiver::start();
    let hook = app
        .register_webhook(
            &subscriber.token,
            &receiver.url(),
            json!(["rates.degraded", "rates.recovered"]),
        )
        .await;
    assert_eq!(hook["events"], json!(["rates.degraded", "rates.recovered"]));
    app.register_webhook(&other.token, &receiver.url(), json!(["conversion.created"]))
        .await;
    // A second instance: its own sources' clients and breakers, the same database.
    let second = rates::Rates::of(&app.state);

    // USD and GBP agree; CHF never did (first outcomes announce nothing).
    rates::fetch_and_store(&app.rates).await.unwrap();
    assert!(rates_events(&app).await.is_empty());

    // Two honest sources go down and the third moves: USD and GBP fall below the quorum. Both
    // instances fetch at once; each change is announced once.
    s.honest[1].answer(500, "{}".into());
    s.honest[2].answer(500, "{}".into());
    s.honest[0].answer(
        200,
        frankfurter(day, &[("USD", "1.15"), ("GBP", "0.84"), ("CHF", "0.93")]),
    );
    let (a, b) = tokio::join!(
        rates::fetch_and_store(&app.rates),
        rates::fetch_and_store(&second)
    );
    a.unwrap();
    b.unwrap();
    rates::fetch_and_store(&app.rates).await.unwrap();
    let degraded = vec![
        ("rates.degraded".to_owned(), "GBP".to_owned()),
        ("rates.degraded".to_owned(), "USD".to_owned()),
    ];
    assert_eq!(rates_events(&app).await, degraded);

    // They agree again: announced once, with the new consensus.
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let (a, b) = tokio::join!(
        rates::fetch_and_store(&app.rates),
        rates::fetch_and_store(&second)
    );
    a.unwrap();
    b.unwrap();
    rates::fetch_and_store(&second).await.unwrap();
    let mut expected = degraded;
    expected.push(("rates.recovered".to_owned(), "GBP".to_owned()));
    expected.push(("rates.recovered".to_owned(), "USD".to_owned()));
    assert_eq!(rates_events(&app).await, expected);

    // Delivered, signed, to the subscriber's endpoint only.
    assert_eq!(app.dispatch_webhooks().await, 4);
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    let secret = hook["secret"].as_str().unwrap();
    assert!(received.iter().all(|r| r.verifies_with(secret)));
    let usd: Vec<Value> = received
        .iter()
        .map(Received::json)
        .filter(|b| b["data"]["currency"] == "USD")
        .collect();
    let down = usd.iter().find(|b| b["type"] == "rates.degraded").unwrap();
    assert_eq!(down["data"]["base"], "EUR");
    assert_eq!(down["data"]["rate"], Value::Null);
    assert_eq!(down["data"]["used"], json!(["honest1"]), "{down}");
    let up = usd.iter().find(|b| b["type"] == "rates.recovered").unwrap();
    assert_eq!(up["data"]["rate"], "1.1", "{up}");
    assert_eq!(up["data"]["used"], json!(["honest1", "honest2", "honest3"]));
    assert_eq!(up["data"]["excluded"][1]["source"], "scaled");
    assert_eq!(up["data"]["excluded"][1]["median"], "1.1");
}

//! Which events are written and to whom (with their change or not at all, subscribers only, at
//! scale), and what the dispatcher does with a receiver that misbehaves.

use super::*;

#[tokio::test]
async fn events_commit_with_their_change_or_not_at_all() {
    let app = spawn_app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let receiver = Receiver::start();

    // Nobody subscribed: nothing is written.
    convert(&app, &other).await;
    assert_eq!(count(&app, "webhook_events").await, 0);

    app.register_webhook(
        &partner.token,
        &receiver.url(),
        json!(["conversion.created"]),
    )
    .await;
    // A refused conversion (invalid batch item) writes no event.
    let res = app
        .convert_batch(
            &partner.token,
            json!([
                {"from": "EUR", "to": "USD", "amount": "1.00"},
                {"from": "EUR", "to": "XXX", "amount": "1.00"},
            ]),
            None,
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(count(&app, "webhook_events").await, 0);

    // A conversion whose transaction fails after the insert leaves neither conversion nor event:
    // make the delivery insert fail inside that transaction.
    sqlx::query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let before = count(&app, "conversions").await;
    let res = app.convert(&partner.token, "EUR", "USD", "100.00").await;
    assert_eq!(res.status(), 500);
    assert_eq!(count(&app, "conversions").await, before);
    assert_eq!(count(&app, "webhook_events").await, 0);
    sqlx::query("DROP TRIGGER refuse ON webhook_deliveries")
        .execute(&app.db)
        .await
        .unwrap();

    // A batch writes one event per conversion.
    let res = app
        .convert_batch(
            &partner.token,
            json!([
                {"from": "EUR", "to": "USD", "amount": "1.00"},
                {"from": "EUR", "to": "GBP", "amount": "2.00"},
            ]),
            None,
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(count(&app, "webhook_events").await, 2);
    assert_eq!(app.dispatch_webhooks().await, 2);
    let types: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| r.json()["data"]["to"].clone())
        .collect();
    assert_eq!(types.len(), 2);
}

#[tokio::test]
async fn cancel_and_finalize_send_their_events_to_subscribers_only() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    app.register_webhook(
        &partner.token,
        &receiver.url(),
        json!(["conversion.cancelled", "conversion.finalized"]),
    )
    .await;
    let cancelled = convert(&app, &partner).await;
    let kept = convert(&app, &partner).await;
    let res = app
        .cancel(&partner.token, cancelled["id"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 200);
    app.clock.advance(TimeDelta::hours(49));
    let finalized = currency_conversion::conversions::service::finalize_due(&app.conversions())
        .await
        .unwrap();
    assert_eq!(finalized, 1);
    assert_eq!(app.dispatch_webhooks().await, 2);
    let got: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    let by_type = |t: &str| got.iter().find(|b| b["type"] == t).unwrap().clone();
    assert_eq!(
        by_type("conversion.cancelled")["data"]["id"],
        cancelled["id"]
    );
    assert_eq!(
        by_type("conversion.cancelled")["data"]["status"],
        "cancelled"
    );
    assert_eq!(by_type("conversion.finalized")["data"]["id"], kept["id"]);
    assert_eq!(
        by_type("conversion.finalized")["data"]["status"],
        "permanent"
    );
    // Not subscribed to conversion.created.
    assert!(got.iter().all(|b| b["type"] != "conversion.created"));
}

#[tokio::test]
async fn a_partner_sees_and_receives_only_its_own() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver_a = Receiver::start();
    let receiver_b = Receiver::start();
    let a = app.partner().await;
    let b = app.partner().await;
    let endpoint = app
        .register_webhook(&a.token, &receiver_a.url(), json!(["conversion.created"]))
        .await;
    app.register_webhook(&b.token, &receiver_b.url(), json!(["conversion.created"]))
        .await;
    convert(&app, &a).await;
    assert_eq!(app.dispatch_webhooks().await, 1);
    assert_eq!(receiver_a.received().len(), 1);
    assert!(receiver_b.received().is_empty());

    let id = endpoint["id"].as_str().unwrap();
    let delivery = app.webhook_delivery_list(&a.token, id_of(&endpoint)).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = app.list_webhooks(&b.token).await;
    assert!(!list.to_string().contains(id));
    assert_problem(
        app.webhook_deliveries(&b.token, id).await,
        404,
        "/problems/not-found",
    )
    .await;
    for res in [
        app.rotate_webhook_secret(&b.token, id).await,
        app.ping_webhook(&b.token, id).await,
        app.retry_webhook_delivery(&b.token, id, &delivery).await,
    ] {
        assert_problem(res, 404, "/problems/not-found").await;
    }
    assert_problem(
        app.delete_webhook(&b.token, id).await,
        404,
        "/problems/not-found",
    )
    .await;
    // The owner deletes it: gone from the list, nothing more sent.
    assert_eq!(app.delete_webhook(&a.token, id).await.status(), 204);
    convert(&app, &a).await;
    assert_eq!(count(&app, "webhook_events").await, 1);
    let list = app.list_webhooks(&a.token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn finalizing_a_thousand_conversions_writes_a_thousand_events() {
    // No holding period: finalize runs on the test clock, which stays on the wall clock the
    // library checks `webhook-timestamp` against.
    let app = spawn_app_with_rates(|s| s.conversions.holding_period_secs = 0).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    app.register_webhook(
        &partner.token,
        &receiver.url(),
        json!(["conversion.finalized"]),
    )
    .await;
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"from": "EUR", "to": "USD", "amount": format!("{}.00", i + 1)}))
        .collect();
    let res = app.convert_batch(&partner.token, json!(items), None).await;
    assert_eq!(res.status(), 201);
    let finalized = currency_conversion::conversions::service::finalize_due(&app.conversions())
        .await
        .unwrap();
    assert_eq!(finalized, 1000);
    assert_eq!(count(&app, "webhook_events").await, 1000);
    assert_eq!(count(&app, "webhook_deliveries").await, 1000);
    assert_eq!(app.dispatch_webhooks().await, 1000);
    let received = receiver.received();
    assert_eq!(received.len(), 1000);
    let secret: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let verified = received.iter().filter(|r| r.verifies_with(&secret)).count();
    assert_eq!(verified, 1000);
}

#[tokio::test]
async fn an_ended_lock_is_announced_once_and_an_indicative_quote_never() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    app.register_webhook(&partner.token, &receiver.url(), json!(["quote.expired"]))
        .await;
    let mut quotes = Vec::new();
    for (lock, amount) in [("five_minutes", Some("1.00")), ("none", None)] {
        quotes.push(app.quoted(&partner.token, "EUR", "USD", amount, lock).await);
    }
    let quotes_handle = app.quotes();
    let record = || currency_conversion::quotes::service::record_expiries(&quotes_handle);
    assert_eq!(record().await.unwrap(), 0, "nothing has expired yet");
    app.clock.advance(TimeDelta::minutes(5));
    assert_eq!(record().await.unwrap(), 1);
    assert_eq!(record().await.unwrap(), 0, "an expiry is recorded once");
    assert_eq!(app.dispatch_webhooks().await, 1);
    let got = receiver.received();
    let body = got[0].json();
    assert_eq!(body["type"], "quote.expired");
    assert_eq!(body["data"]["id"], quotes[0]["id"]);
    assert_eq!(body["data"]["status"], "expired");
    assert_eq!(body["data"]["lock"], "five_minutes");
}

#[tokio::test]
async fn a_redirect_is_an_answer_not_an_instruction() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    receiver.answer(307);
    let partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    convert(&app, &partner).await;
    assert_eq!(app.dispatch_webhooks().await, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "the redirect was followed");
    assert_eq!(got[0].path, "/hook");
    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["last_status_code"], 307);
}

/// A measurement, not a check of speed: finalizing 10,000 conversions writes 10,000 events in
/// the finalize transactions, and the dispatcher delivers them afterwards. Run with
/// `cargo test --test api -- --ignored ten_thousand --nocapture`.
#[tokio::test]
#[ignore = "a measurement: 10,000 conversions take a while in a debug build"]
async fn finalizing_ten_thousand_conversions_writes_ten_thousand_events() {
    let app = spawn_app_with_rates(|s| s.conversions.holding_period_secs = 0).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    app.register_webhook(
        &partner.token,
        &receiver.url(),
        json!(["conversion.finalized"]),
    )
    .await;
    for _ in 0..10 {
        let items: Vec<Value> = (0..1000)
            .map(|i| json!({"from": "EUR", "to": "USD", "amount": format!("{}.00", i + 1)}))
            .collect();
        let res = app.convert_batch(&partner.token, json!(items), None).await;
        assert_eq!(res.status(), 201);
    }
    let started = std::time::Instant::now();
    let finalized = currency_conversion::conversions::service::finalize_due(&app.conversions())
        .await
        .unwrap();
    let finalize_time = started.elapsed();
    assert_eq!(finalized, 10_000);
    assert_eq!(count(&app, "webhook_events").await, 10_000);
    let started = std::time::Instant::now();
    assert_eq!(app.dispatch_webhooks().await, 10_000);
    let dispatch_time = started.elapsed();
    let received = receiver.received();
    assert_eq!(received.len(), 10_000);
    let secret: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let verified = received.iter().filter(|r| r.verifies_with(&secret)).count();
    eprintln!(
        "finalized 10000 with their events in {finalize_time:?}; delivered in {dispatch_time:?}; \
         {verified} verified by standardwebhooks"
    );
    assert_eq!(verified, 10_000);
}

#[tokio::test]
async fn dispatchers_racing_each_other_send_every_delivery_once() {
    // Two instances' dispatchers on the same PostgreSQL: claims skip each other's rows.
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    app.register_webhook(
        &partner.token,
        &receiver.url(),
        json!(["conversion.created"]),
    )
    .await;
    let items: Vec<Value> = (0..300)
        .map(|i| json!({"from": "EUR", "to": "USD", "amount": format!("{}.00", i + 1)}))
        .collect();
    let res = app.convert_batch(&partner.token, json!(items), None).await;
    assert_eq!(res.status(), 201);
    let (one, two) = (
        Webhooks::new(
            app.db.clone(),
            app.state.redis.clone(),
            app.clock.clone(),
            &app.settings.webhooks,
            app.idempotency_keys(),
        )
        .unwrap(),
        Webhooks::new(
            app.db.clone(),
            app.state.redis.clone(),
            app.clock.clone(),
            &app.settings.webhooks,
            app.idempotency_keys(),
        )
        .unwrap(),
    );
    let (a, b) = tokio::join!(one.dispatch_due(), two.dispatch_due());
    assert_eq!(a.unwrap() + b.unwrap(), 300);
    let mut ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(ids.len(), 300);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "an event was sent twice");
}

/// A receiver that answers every delivery `500` with a body of `len` bytes, written in chunks as
/// the connection takes them (never held in memory), and reports how many bytes it got to send
/// before the dispatcher hung up.
struct FloodingReceiver {
    port: u16,
    sent: tokio::task::JoinHandle<u64>,
}

impl FloodingReceiver {
    const FIRST_LINE: &'static [u8] = b"receiver is failing: ";

    async fn start(len: u64) -> FloodingReceiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // The request: its head, then as many body bytes as it announces.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the dispatcher hung up before sending its request");
                request.extend_from_slice(&buf[..n]);
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while request.len() < head_end + body_len {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0);
                request.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\n\r\n"
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            let mut chunk = vec![b'x'; 64 * 1024];
            chunk[..Self::FIRST_LINE.len()].copy_from_slice(Self::FIRST_LINE);
            let mut sent = 0u64;
            while sent < len {
                let n = usize::try_from((len - sent).min(chunk.len() as u64)).unwrap();
                if socket.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                sent += n as u64;
                // Only the first chunk starts with the line.
                chunk[..Self::FIRST_LINE.len()].fill(b'x');
            }
            sent
        });
        FloodingReceiver { port, sent }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

#[tokio::test]
async fn a_huge_error_body_is_cut_after_a_few_kilobytes_and_the_attempt_is_recorded() {
    const BODY: u64 = 512 * 1024 * 1024;
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = FloodingReceiver::start(BODY).await;
    let partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    convert(&app, &partner).await;

    assert_eq!(app.dispatch_webhooks().await, 1);

    // The receiver stops when its writes fail: the dispatcher closed the connection instead of
    // reading on. What it got to send is what the dispatcher read plus what the kernel's socket
    // buffers held (a few MB on loopback), nowhere near the body.
    let sent = tokio::time::timeout(std::time::Duration::from_secs(120), receiver.sent)
        .await
        .expect("the receiver was still sending: the dispatcher kept reading")
        .unwrap();
    assert!(
        sent < 32 * 1024 * 1024,
        "the dispatcher took {sent} of {BODY} bytes"
    );

    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["last_status_code"], 500);
    let error = list[0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("the endpoint answered 500: receiver is failing: xxx"),
        "{error}"
    );
    assert!(error.len() < 300, "{} characters kept", error.len());
}

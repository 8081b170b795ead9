//! Webhooks end to end: a real HTTP receiver on a random port, signatures checked with the
//! off-the-shelf `standardwebhooks` crate, the dispatcher run as the job runs it, retries moved
//! along on the injected clock.

mod events;
mod fairness;
mod outages;
mod pings;
mod rates_events;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::TimeDelta;
use currency_conversion::webhooks::Webhooks;
use serde_json::{Value, json};

use crate::helpers::{
    TEST_PASSWORD, TestApp, TestUser, assert_problem, spawn_app_with, spawn_app_with_rates,
};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Verified with the Standard Webhooks library and `secret`.
    fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(self.body.as_bytes(), &self.headers)
            .is_ok()
    }
}

/// A webhook receiver: records every request and answers with the status it is told.
#[derive(Clone)]
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
}

impl Receiver {
    /// A port nobody listens on yet (bound and released), for a receiver that is down.
    fn reserve_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn start() -> Receiver {
        Self::start_on(0)
    }

    fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
            status: Arc::new(Mutex::new(200)),
        };
        let shared = receiver.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: String| {
                let shared = shared.clone();
                async move {
                    let mut headers = reqwest::header::HeaderMap::new();
                    for (name, value) in req.headers() {
                        headers.insert(
                            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes())
                                .unwrap(),
                            reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                        );
                    }
                    let path = req.path().to_owned();
                    shared.received.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                    });
                    let status = *shared.status.lock().unwrap();
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        // Where a redirect would send the dispatcher, if it followed one.
                        .insert_header(("Location", "/elsewhere"))
                        .body("receiver says hi")
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A receiver that holds every request until its gate opens, then answers 204: a slow receiver
/// whose slowness the test controls instead of sleeping. Records the `webhook-id` of every
/// request, and how many requests each path held at once at most.
#[derive(Clone)]
struct GatedReceiver {
    port: u16,
    ids: Arc<Mutex<Vec<String>>>,
    /// Requests held now, per path.
    held: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    /// The most requests held at once, per path and in all.
    most: Arc<Mutex<(std::collections::HashMap<String, usize>, usize)>>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

impl GatedReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = GatedReceiver {
            port: listener.local_addr().unwrap().port(),
            ids: Arc::default(),
            held: Arc::default(),
            most: Arc::default(),
            gate: Arc::new(tokio::sync::watch::channel(false).0),
        };
        let shared = receiver.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest| {
                let shared = shared.clone();
                async move {
                    let id = req.headers().get("webhook-id").unwrap().to_str().unwrap();
                    shared.ids.lock().unwrap().push(id.to_owned());
                    let path = req.path().to_owned();
                    shared.enter(&path);
                    let mut gate = shared.gate.subscribe();
                    let _ = gate.wait_for(|open| *open).await;
                    shared.leave(&path);
                    HttpResponse::NoContent().finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        receiver
    }

    fn enter(&self, path: &str) {
        let mut held = self.held.lock().unwrap();
        let now = {
            let n = held.entry(path.to_owned()).or_default();
            *n += 1;
            *n
        };
        let total: usize = held.values().sum();
        let mut most = self.most.lock().unwrap();
        let at_path = most.0.entry(path.to_owned()).or_default();
        *at_path = (*at_path).max(now);
        most.1 = most.1.max(total);
    }

    fn leave(&self, path: &str) {
        if let Some(n) = self.held.lock().unwrap().get_mut(path) {
            *n -= 1;
        }
    }

    /// The URL of path `/hook/{name}`.
    fn url_of(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{name}", self.port)
    }

    fn url(&self) -> String {
        self.url_of("one")
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Requests held now, in all.
    fn waiting(&self) -> usize {
        self.held.lock().unwrap().values().sum()
    }

    /// The most requests held at once by any one path, and in all.
    fn most_at_once(&self) -> (usize, usize) {
        let most = self.most.lock().unwrap();
        (most.0.values().copied().max().unwrap_or(0), most.1)
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

/// Waits until `check` holds, at most `secs`; whether it did.
async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The id of an endpoint as the API shows it.
fn id_of(endpoint: &Value) -> &str {
    endpoint["id"].as_str().unwrap()
}

/// The partner logged in again: moving the clock by hours expires its access token.
async fn relogin(app: &TestApp, partner: &mut TestUser) {
    let tokens = app.login(&partner.email, TEST_PASSWORD).await;
    partner.token = tokens["access_token"].as_str().unwrap().to_owned();
}

/// The partner converts 100 EUR into USD; returns the conversion.
async fn convert(app: &TestApp, partner: &TestUser) -> Value {
    let res = app.convert(&partner.token, "EUR", "USD", "100.00").await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_conversion_reaches_the_receiver_signed_as_standard_webhooks_verifies() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));

    let conversion = convert(&app, &partner).await;
    assert_eq!(app.dispatch_webhooks().await, 1);

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].verifies_with(secret),
        "the library rejected the signature"
    );
    assert!(!got[0].verifies_with(&currency_conversion::webhooks::signing::new_secret()));
    let body = got[0].json();
    assert_eq!(body["type"], "conversion.created");
    assert!(body["timestamp"].is_string());
    // The resource exactly as the API shows it.
    let shown: Value = app
        .get_with_token(
            &format!("/api/v1/conversions/{}", conversion["id"].as_str().unwrap()),
            &partner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"], shown);
    assert_eq!(got[0].header("content-type"), "application/json");

    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "delivered");
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["last_status_code"], 200);
    assert!(list[0]["last_latency_ms"].is_number());
    assert!(list[0]["next_attempt_at"].is_null());
    assert_eq!(
        list[0]["event_id"].as_str().unwrap(),
        got[0].header("webhook-id")
    );

    // The list shows no secrets.
    let endpoints = app.list_webhooks(&partner.token).await;
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 1);
    assert!(!endpoints.to_string().contains("whsec_"));
    // Nothing is left to send.
    assert_eq!(app.dispatch_webhooks().await, 0);
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_the_event_with_the_same_webhook_id() {
    let app = spawn_app_with_rates(|_| {}).await;
    let port = Receiver::reserve_port();
    let partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &format!("http://127.0.0.1:{port}/hook"),
            json!(["conversion.created"]),
        )
        .await;
    convert(&app, &partner).await;

    // Down: nothing listens.
    assert_eq!(app.dispatch_webhooks().await, 1);
    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["attempts"], 1);
    assert!(list[0]["last_status_code"].is_null());
    assert!(!list[0]["last_error"].as_str().unwrap().is_empty());
    let first_retry =
        chrono::DateTime::parse_from_rfc3339(list[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let expected = app.clock.now() + TimeDelta::seconds(5);
    assert!((first_retry.to_utc() - expected).abs() < TimeDelta::milliseconds(1));

    // Up, but failing: not due yet, then due after the first delay.
    let receiver = Receiver::start_on(port);
    receiver.answer(503);
    assert_eq!(app.dispatch_webhooks().await, 0);
    app.clock.advance(TimeDelta::seconds(5));
    assert_eq!(app.dispatch_webhooks().await, 1);
    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["last_status_code"], 503);

    // Healthy: the next attempt delivers.
    receiver.answer(204);
    app.clock.advance(TimeDelta::seconds(300));
    assert_eq!(app.dispatch_webhooks().await, 1);
    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "delivered");
    assert_eq!(list[0]["attempts"], 3);

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(
        got[0].header("webhook-id"),
        list[0]["event_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_delivery_is_dead_after_its_last_attempt_and_can_be_retried() {
    let app = spawn_app_with_rates(|s| s.webhooks.retry_schedule_secs = vec![1, 2]).await;
    let receiver = Receiver::start();
    receiver.answer(500);
    let mut partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    convert(&app, &partner).await;

    assert_eq!(app.dispatch_webhooks().await, 1);
    app.clock.advance(TimeDelta::seconds(1));
    assert_eq!(app.dispatch_webhooks().await, 1);
    app.clock.advance(TimeDelta::seconds(2));
    assert_eq!(app.dispatch_webhooks().await, 1);
    app.clock.advance(TimeDelta::days(2));
    assert_eq!(
        app.dispatch_webhooks().await,
        0,
        "a dead delivery is not tried again"
    );
    relogin(&app, &mut partner).await;

    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "dead");
    assert_eq!(list[0]["attempts"], 3);
    assert_eq!(list[0]["last_status_code"], 500);
    assert!(list[0]["next_attempt_at"].is_null());
    assert!(list[0]["last_error"].as_str().unwrap().contains("500"));

    // The partner retries it by hand once the receiver is fixed.
    receiver.answer(200);
    let res = app
        .retry_webhook_delivery(
            &partner.token,
            id_of(&endpoint),
            list[0]["id"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status(), 202);
    let retried: Value = res.json().await.unwrap();
    assert_eq!(retried["state"], "pending");
    assert_eq!(retried["attempts"], 0);
    assert_eq!(app.dispatch_webhooks().await, 1);
    let list = app
        .webhook_delivery_list(&partner.token, id_of(&endpoint))
        .await;
    assert_eq!(list[0]["state"], "delivered");

    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_and_afterwards_only_the_new_one() {
    let app = spawn_app_with_rates(|_| {}).await;
    let receiver = Receiver::start();
    let mut partner = app.partner().await;
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let id = endpoint["id"].as_str().unwrap();
    let old = endpoint["secret"].as_str().unwrap().to_owned();

    let res = app.rotate_webhook_secret(&partner.token, id).await;
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);

    let res = app.ping_webhook(&partner.token, id).await;
    assert_eq!(res.status(), 202);
    // The test endpoint queued a dispatcher run: the app's own workers send the ping.
    let stats = app.run_pending_jobs().await;
    assert_eq!(stats.succeeded, 1);
    let ping = &receiver.received()[0];
    assert_eq!(ping.json()["type"], "ping");
    assert_eq!(ping.header("webhook-signature").split(' ').count(), 2);
    assert!(
        ping.verifies_with(&old),
        "the previous secret must still verify"
    );
    assert!(ping.verifies_with(&new), "the new secret must verify");

    // After the 24 h overlap only the new secret signs. The library checks the timestamp
    // against the wall clock, which the test clock has left behind: compare signatures instead.
    app.clock
        .advance(TimeDelta::hours(24) + TimeDelta::seconds(1));
    relogin(&app, &mut partner).await;
    convert(&app, &partner).await;
    assert_eq!(app.dispatch_webhooks().await, 1);
    let later = &receiver.received()[1];
    let (msg_id, ts) = (
        later.header("webhook-id"),
        later.header("webhook-timestamp"),
    );
    let sign = |secret: &str| {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign(&msg_id, ts.parse().unwrap(), later.body.as_bytes())
            .unwrap()
    };
    assert_eq!(later.header("webhook-signature"), sign(&new));
    assert_ne!(later.header("webhook-signature"), sign(&old));
}

#[tokio::test]
async fn private_and_internal_targets_are_refused_when_the_setting_is_off() {
    let app = spawn_app_with(|s| {
        s.webhooks.allow_private_targets = false;
        s.webhooks.allow_http = true;
    })
    .await;
    let partner = app.partner().await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://[fd00::1]/hook",
        // IPv4-translated, IPv4-compatible, NAT64 and 6to4 spellings of internal IPv4 addresses.
        "http://[::ffff:0:7f00:1]/hook",
        "http://[::ffff:0:a9fe:a9fe]/hook",
        "http://[::7f00:1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[2002:c0a8:101::1]/hook",
    ] {
        let res = app
            .try_register_webhook(
                &partner.token,
                &json!({"url": url, "events": ["conversion.created"]}),
            )
            .await;
        let problem = assert_problem(res, 422, "/problems/webhook-target-forbidden").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("not an allowed destination"),
            "{url}: {problem}"
        );
        // What a name resolves to inside our network is not the partner's to learn.
        assert!(
            !detail.contains("127.0.0.1") || url.contains("127.0.0.1"),
            "{url}: {problem}"
        );
    }
    assert_eq!(count(&app, "webhook_endpoints").await, 0);
}

#[tokio::test]
async fn urls_must_be_https_unless_http_is_allowed_and_events_must_exist() {
    let app = spawn_app_with(|s| s.webhooks.allow_http = false).await;
    let partner = app.partner().await;
    for (body, field) in [
        (
            json!({"url": "http://example.com/hook", "events": ["conversion.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://example.com/hook", "events": ["conversion.created"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@example.com/hook", "events": ["conversion.created"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/hook", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/hook", "events": ["conversion.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/hook", "events": ["ping"]}),
            "events",
        ),
    ] {
        let res = app.try_register_webhook(&partner.token, &body).await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_at_delivery_time_is_not_called() {
    // Registration found a public address; by delivery the name points at loopback (DNS
    // rebinding). The stored row stands for that registration.
    let app = spawn_app_with_rates(|s| {
        s.webhooks.allow_private_targets = false;
        s.webhooks.allow_http = true;
    })
    .await;
    let receiver = Receiver::start();
    let partner = app.partner().await;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, partner_id, url, events, secret, created_at)
         VALUES (gen_random_uuid(), $1, $2, ARRAY['conversion.created'], $3, now())",
    )
    .bind(partner.id)
    .bind(format!("http://localhost:{}/hook", receiver.port))
    .bind(currency_conversion::webhooks::signing::new_secret())
    .execute(&app.db)
    .await
    .unwrap();
    convert(&app, &partner).await;
    assert_eq!(app.dispatch_webhooks().await, 1);
    assert!(
        receiver.received().is_empty(),
        "the guard let a loopback connection through"
    );
    let error: String = sqlx::query_scalar("SELECT last_error FROM webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(error.contains("not an allowed destination"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
}

//! Group commit of `POST /conversions`: conversions that share one statement each get their
//! own answer (a bad row, a currency disabled behind the cache, a key used twice in the group,
//! replays), and every 201 names a conversion that is stored, once, even when the process is
//! killed mid-load.
//!
//! To put requests in one group on purpose, the app runs one group statement at a time
//! (`group_commit_max_in_flight = 1`) and a [`Plug`] holds the first one: an open transaction
//! holds the `Idempotency-Key` the plug request claims, so that request's statement waits on it
//! while the others queue behind it; releasing the transaction lets the plug through and the
//! queued requests leave together as the next group.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::conversions::app_with_rates;
use crate::helpers::{Server, TestApp, TestUser, assert_problem, free_port, poll};

/// One group statement at a time, so that requests queue behind a held one.
async fn app_with_one_group_in_flight() -> TestApp {
    app_with_rates(|s| {
        s.conversions.group_commit_max_in_flight = 1;
        s.conversions.group_commit_max_rows = 64;
    })
    .await
}

/// A group statement held in flight (see the module doc).
struct Plug {
    holder: PgConnection,
    request: tokio::task::JoinHandle<reqwest::Response>,
}

impl Plug {
    /// Sends a conversion of `partner` whose statement waits on a key held by an open
    /// transaction, and returns once it waits there.
    async fn hold(app: &TestApp, partner: &TestUser) -> Self {
        let options = (*app.db.connect_options()).clone();
        let mut holder = PgConnection::connect_with(&options).await.unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        sqlx::query(
            "INSERT INTO idempotency_keys (partner_id, scope, key, request_hash, resource_id,
                                           created_at, expires_at)
             VALUES ($1, 'conversion', 'plug', '\\x00', gen_random_uuid(), now(), now())",
        )
        .bind(partner.id)
        .execute(&mut holder)
        .await
        .unwrap();
        let request = {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/api/v1/conversions"),
                partner.token.clone(),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", "plug")
                    .json(&json!({"from": "EUR", "to": "USD", "amount": "1.00"}))
                    .send()
                    .await
                    .unwrap()
            })
        };
        poll(
            Duration::from_secs(10),
            "the plug to wait on its key",
            || {
                let db = app.db.clone();
                let name = app.db_name.clone();
                async move {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                    )
                    .bind(name)
                    .fetch_one(&db)
                    .await
                    .unwrap();
                    waiting == 1
                }
            },
        )
        .await;
        Self { holder, request }
    }

    /// Lets the plug through (its key was never committed, so it is stored) and returns its
    /// answer.
    async fn release(mut self) -> reqwest::Response {
        sqlx::query("ROLLBACK")
            .execute(&mut self.holder)
            .await
            .unwrap();
        self.request.await.unwrap()
    }
}

/// Sends `body` to `POST /conversions` (with `key`, if any) in a task of its own.
fn send(
    app: &TestApp,
    partner: &TestUser,
    body: Value,
    key: Option<&str>,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let mut req = app
        .client
        .post(app.url("/api/v1/conversions"))
        .bearer_auth(&partner.token)
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    tokio::spawn(async move { req.send().await.unwrap() })
}

/// Waits until `n` conversions are queued behind the plug.
async fn queued(app: &TestApp, n: usize) {
    let commits = app.conversions().commits;
    poll(
        Duration::from_secs(10),
        &format!("{n} conversions to queue"),
        || {
            let waiting = commits.waiting();
            async move { waiting == n }
        },
    )
    .await;
}

async fn created(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// One group holding a plain conversion, a currency disabled behind the cache after its row was
/// priced, a key sent twice with the same body and once with another, and replays of a key used
/// before: each request gets the answer it would get alone, and only the new rows are stored.
#[tokio::test]
async fn conversions_in_one_group_each_get_their_own_answer() {
    let app = app_with_one_group_in_flight().await;
    let partner = app.partner().await;
    let x = json!({"from": "EUR", "to": "USD", "amount": "10.00"});
    let y = json!({"from": "EUR", "to": "USD", "amount": "20.00"});
    let old = created(
        app.convert_idempotently(&partner.token, &x, "used-before")
            .await,
        201,
    )
    .await;
    // Warms the cache with GBP usable.
    created(app.convert(&partner.token, "EUR", "GBP", "1.00").await, 201).await;

    let plug = Plug::hold(&app, &partner).await;
    let plain = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "JPY", "amount": "5.00"}),
        None,
    );
    let disabled = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "GBP", "amount": "5.00"}),
        None,
    );
    let first = send(&app, &partner, x.clone(), Some("twice"));
    queued(&app, 3).await;
    let again = send(&app, &partner, x.clone(), Some("twice"));
    let other_body = send(&app, &partner, y.clone(), Some("twice"));
    let replay = send(&app, &partner, x.clone(), Some("used-before"));
    let reused = send(&app, &partner, y.clone(), Some("used-before"));
    queued(&app, 7).await;
    // Behind the cache's back, after the row was priced with GBP usable.
    sqlx::query("UPDATE currencies SET enabled = false WHERE code = 'GBP'")
        .execute(&app.db)
        .await
        .unwrap();
    created(plug.release().await, 201).await;

    let plain = created(plain.await.unwrap(), 201).await;
    assert_eq!(plain["result"], "817");
    assert_problem(disabled.await.unwrap(), 422, "/problems/currency-disabled").await;
    let first = created(first.await.unwrap(), 201).await;
    let again = created(again.await.unwrap(), 200).await;
    assert_eq!(
        again["id"], first["id"],
        "the same key and body: the original"
    );
    assert_problem(
        other_body.await.unwrap(),
        422,
        "/problems/idempotency-key-reused",
    )
    .await;
    let replay = created(replay.await.unwrap(), 200).await;
    assert_eq!(replay["id"], old["id"]);
    assert_problem(
        reused.await.unwrap(),
        422,
        "/problems/idempotency-key-reused",
    )
    .await;

    // used-before, the GBP warm-up, the plug, plain, first: nothing else.
    assert_eq!(app.stored_conversions().await, 5);
    let keys: Vec<(String, uuid::Uuid)> =
        sqlx::query_as("SELECT key, resource_id FROM idempotency_keys ORDER BY key")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let id = |v: &Value| v["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[1], ("twice".to_owned(), id(&first)));
    assert_eq!(keys[2], ("used-before".to_owned(), id(&old)));
}

/// A row PostgreSQL refuses (here a constraint added for the test that one amount violates)
/// fails the group's statement as a whole; its neighbours are then written one by one and
/// stored, and only the bad row's request fails.
#[tokio::test]
async fn one_bad_row_does_not_fail_its_group() {
    let app = app_with_one_group_in_flight().await;
    let partner = app.partner().await;
    sqlx::query("ALTER TABLE conversions ADD CONSTRAINT no_777 CHECK (amount <> 777)")
        .execute(&app.db)
        .await
        .unwrap();

    let plug = Plug::hold(&app, &partner).await;
    let before = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "USD", "amount": "1.00"}),
        None,
    );
    let bad = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "USD", "amount": "777.00"}),
        Some("bad"),
    );
    queued(&app, 2).await;
    let keyed = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "USD", "amount": "2.00"}),
        Some("good"),
    );
    let after = send(
        &app,
        &partner,
        json!({"from": "EUR", "to": "JPY", "amount": "3.00"}),
        None,
    );
    queued(&app, 4).await;
    created(plug.release().await, 201).await;

    let before = created(before.await.unwrap(), 201).await;
    let bad = bad.await.unwrap();
    assert_eq!(bad.status(), 500);
    let keyed = created(keyed.await.unwrap(), 201).await;
    let after = created(after.await.unwrap(), 201).await;
    for c in [&before, &keyed, &after] {
        assert_eq!(
            app.get_conversion(&partner.token, &c["id"]).await.status(),
            200
        );
    }
    // The plug and the three good rows; the bad row's key was not kept either.
    assert_eq!(app.stored_conversions().await, 4);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, ["good", "plug"]);
}

/// The outbox rows a group writes are the rows `webhooks::outbox::record` writes for the same
/// conversions: an event per stored conversion of a partner with a live subscribed endpoint,
/// a delivery per such endpoint, nothing for a partner without one.
#[tokio::test]
async fn a_group_writes_the_same_webhook_rows_as_the_outbox() {
    use currency_conversion::auth::PartnerId;
    use currency_conversion::webhooks::{EventType, outbox};

    let app = app_with_one_group_in_flight().await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let silent = app.partner().await;
    for (token, events) in [
        (&partner.token, json!(["conversion.created"])),
        (
            &partner.token,
            json!(["conversion.finalized", "conversion.created"]),
        ),
        (&partner.token, json!(["conversion.finalized"])),
        (&other.token, json!(["conversion.created"])),
    ] {
        let res = app
            .post_json(
                "/api/v1/webhooks",
                &json!({"url": "http://127.0.0.1:9/hook", "events": events}),
                Some(token),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let rows = || async {
        let events: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(e) - 'id' FROM webhook_events e ORDER BY partner_id, payload",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        let deliveries: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(d) - 'id' - 'event_id' FROM webhook_deliveries d
             ORDER BY endpoint_id, next_attempt_at",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        (events, deliveries)
    };

    let plug = Plug::hold(&app, &silent).await;
    let requests = [
        send(
            &app,
            &partner,
            json!({"from": "EUR", "to": "USD", "amount": "1.00"}),
            None,
        ),
        send(
            &app,
            &partner,
            json!({"from": "EUR", "to": "JPY", "amount": "2.00"}),
            Some("k"),
        ),
        send(
            &app,
            &other,
            json!({"from": "EUR", "to": "USD", "amount": "3.00"}),
            None,
        ),
        send(
            &app,
            &silent,
            json!({"from": "EUR", "to": "USD", "amount": "4.00"}),
            None,
        ),
    ];
    queued(&app, 4).await;
    created(plug.release().await, 201).await;
    let mut views = Vec::new();
    for r in requests {
        let c = created(r.await.unwrap(), 201).await;
        let id = c["id"].as_str().unwrap().parse().unwrap();
        views.push(
            currency_conversion::conversions::service::get(&app.conversions(), id, None)
                .await
                .unwrap(),
        );
    }
    let by_group = rows().await;
    assert_eq!(
        by_group.0.len(),
        3,
        "an event per subscribed partner's conversion"
    );
    assert_eq!(
        by_group.1.len(),
        5,
        "2 + 2 for the partner's two endpoints, 1 for the other"
    );

    sqlx::query("DELETE FROM webhook_events")
        .execute(&app.db)
        .await
        .unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    for view in &views {
        outbox::record(
            &mut conn,
            EventType::ConversionCreated,
            view.created_at,
            [(PartnerId::from_uuid(view.partner_id), view)],
        )
        .await
        .unwrap();
    }
    assert_eq!(rows().await, by_group);
}

/// What a conversion request got: a conversion (201 or 200) or nothing known (no answer).
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Created(String),
    Replayed(String),
    Unknown,
}

async fn convert_with_key(
    client: &reqwest::Client,
    port: u16,
    token: &str,
    key: &str,
    amount: &str,
) -> Outcome {
    let sent = client
        .post(format!("http://127.0.0.1:{port}/api/v1/conversions"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"from": "EUR", "to": "USD", "amount": amount}))
        .send()
        .await;
    let Ok(res) = sent else {
        return Outcome::Unknown;
    };
    let status = res.status().as_u16();
    let Ok(body) = res.json::<Value>().await else {
        return Outcome::Unknown;
    };
    let id = body["id"].as_str().map(str::to_owned);
    match (status, id) {
        (201, Some(id)) => Outcome::Created(id),
        (200, Some(id)) => Outcome::Replayed(id),
        _ => panic!("unexpected answer {status}: {body}"),
    }
}

/// The crash test: the real binary under 16 concurrent keyed conversions is killed with
/// SIGKILL mid-load and started again. Every id that got a 201 is stored, exactly once; every
/// key retried with its body returns the id it got before (or, for a request that got no
/// answer, one conversion, whichever it is); no conversion exists that no key names.
#[tokio::test]
async fn every_201_survives_a_kill_9_and_retries_return_the_same_ids() {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    let port = free_port();
    let mut server = Server::start(&app, port).await;

    let created = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut clients = Vec::new();
    for c in 0..16 {
        let (client, token, created) = (client.clone(), partner.token.clone(), created.clone());
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 1.. {
                let (key, amount) = (format!("crash-{c}-{i}"), format!("{i}.00"));
                let outcome = convert_with_key(&client, port, &token, &key, &amount).await;
                if matches!(outcome, Outcome::Created(_)) {
                    created.fetch_add(1, Ordering::Relaxed);
                }
                let done = outcome == Outcome::Unknown;
                outcomes.push((key, amount, outcome));
                if done {
                    break;
                }
            }
            outcomes
        }));
    }
    poll(Duration::from_secs(60), "conversions under load", || {
        let n = created.load(Ordering::Relaxed);
        async move { n >= 300 }
    })
    .await;
    server.kill_9();
    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.extend(c.await.unwrap());
    }
    let answered: Vec<_> = outcomes
        .iter()
        .filter_map(|(key, _, o)| match o {
            Outcome::Created(id) => Some((key.clone(), id.clone())),
            _ => None,
        })
        .collect();
    assert!(answered.len() >= 300);
    assert!(
        outcomes
            .iter()
            .all(|(_, _, o)| !matches!(o, Outcome::Replayed(_))),
        "every key was new"
    );

    let port = free_port();
    let _server = Server::start(&app, port).await;
    let ids: Vec<uuid::Uuid> = answered.iter().map(|(_, id)| id.parse().unwrap()).collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM conversions WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, ids.len() as i64, "every 201 is stored, once");

    let mut by_key = HashMap::new();
    for (key, amount, before) in &outcomes {
        let after = convert_with_key(&client, port, &partner.token, key, amount).await;
        match (before, &after) {
            (Outcome::Created(id), Outcome::Replayed(again)) => assert_eq!(id, again, "{key}"),
            (Outcome::Unknown, Outcome::Created(_) | Outcome::Replayed(_)) => {}
            _ => panic!("{key}: {before:?} then {after:?}"),
        }
        if let Outcome::Created(id) | Outcome::Replayed(id) = after {
            by_key.insert(key.clone(), id);
        }
    }
    let named: HashSet<&String> = by_key.values().collect();
    assert_eq!(named.len(), by_key.len(), "no two keys name one conversion");
    let all: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM conversions WHERE partner_id = $1")
            .bind(partner.id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        all.len(),
        by_key.len(),
        "one conversion per key, none twice"
    );
    assert!(all.iter().all(|id| named.contains(id)));
}

/// At start the writers are opened ahead of the first conversions, each having run the group
/// statement once with no rows: as many connections as groups may be in flight, and nothing
/// written by it.
#[tokio::test]
async fn writers_open_ahead_of_the_first_conversions_and_write_nothing() {
    let app = app_with_rates(|s| s.conversions.group_commit_max_in_flight = 3).await;
    let writers = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'currency-conversion group writer'",
        )
        .bind(&app.db_name)
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    assert_eq!(writers().await, 0, "lazy until asked");
    app.conversions().commits.open_writers().await;
    assert_eq!(writers().await, 3);
    for table in [
        "conversions",
        "idempotency_keys",
        "webhook_events",
        "conversion_daily_totals",
    ] {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(rows, 0, "{table}");
    }
    // And the writers write: a conversion goes through one of them.
    let partner = app.partner().await;
    assert_eq!(
        app.convert(&partner.token, "EUR", "USD", "5.00")
            .await
            .status(),
        201
    );
    assert_eq!(writers().await, 3);
}

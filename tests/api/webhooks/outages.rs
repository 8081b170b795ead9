//! Webhook dispatch across a PostgreSQL cut: the real `deliver_webhooks` job, scheduled every
//! second on workers and a scheduler of the test's own, reaches PostgreSQL through a TCP proxy
//! that the test cuts while a delivery is in flight.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use currency_conversion::clock::Clock;
use currency_conversion::state::{AppState, ProcessRole};
use currency_conversion::tasks::{self, Job, TaskRegistry};
use currency_conversion::webhooks::DeliverWebhooks;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::helpers::task_queue;
use crate::proxy::TcpProxy;

/// A delivery's event id and state, as the partner sees them.
async fn deliveries(app: &TestApp, token: &str, endpoint: &str) -> Vec<(String, String)> {
    app.webhook_delivery_list(token, endpoint)
        .await
        .iter()
        .map(|d| {
            (
                d["event_id"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Before leases were renewed and taken over, a cut like this one left the dispatcher's run
/// `running` until `tasks.visibility_timeout_secs` (300 s), and every later run waited behind
/// it. Now the run's 3 s lease lapses, the reconciler takes it over once PostgreSQL answers, and
/// dispatch resumes; the bound below is for liveness, far under those 300 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_resumes_soon_after_a_postgres_cut_and_every_delivery_arrives() {
    // An attempt's claim lasts `timeout_secs` + 30 s: the delivery whose outcome the cut lost is
    // due again that soon.
    let app = spawn_app_with_rates(|s| s.webhooks.timeout_secs = 2).await;
    let partner = app.partner().await;
    let receiver = GatedReceiver::start();
    let endpoint = app
        .register_webhook(
            &partner.token,
            &receiver.url(),
            json!(["conversion.created"]),
        )
        .await;
    let endpoint = id_of(&endpoint).to_owned();

    // The dispatching process: PostgreSQL through the proxy, the system clock (the cron fires
    // on it), a lease of 3 s renewed every second.
    let pg = TcpProxy::start("127.0.0.1:5432".into()).await;
    let mut settings = app.settings.clone();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        pg.port, app.db_name
    ));
    settings.database.acquire_timeout_ms = 500;
    settings.tasks.lease_secs = 3;
    let instance = AppState::new(settings, Clock::system()).unwrap();
    let webhooks = Webhooks::new(
        instance.db.clone(),
        instance.redis.clone(),
        instance.clock.clone(),
        &instance.settings.webhooks,
        app.idempotency_keys(),
    )
    .unwrap();
    let mut registry = TaskRegistry::new();
    registry.register::<DeliverWebhooks>(webhooks);
    registry
        .schedule(DeliverWebhooks::NAME, &"* * * * * *".parse().unwrap())
        .unwrap();
    let shutdown = CancellationToken::new();
    let background = tasks::start_background(
        task_queue(&instance),
        Arc::new(registry),
        ProcessRole::All,
        shutdown.clone(),
    );

    convert(&app, &partner).await;
    assert!(
        eventually(30, || async { receiver.waiting() == 1 }).await,
        "the first delivery was not attempted"
    );
    // The dispatcher's PostgreSQL goes away while the attempt is in flight; the receiver then
    // answers, and the outcome cannot be recorded.
    pg.cut();
    receiver.open();
    // Partners keep converting (the API reaches PostgreSQL directly): two more events.
    convert(&app, &partner).await;
    convert(&app, &partner).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // the outage itself, not a wait for an outcome
    pg.restore();
    let restored = Instant::now();

    // The two events made during the cut were never claimed: once they are delivered, dispatch
    // has resumed. (Printed as a measurement, not asserted on.)
    let resumed = eventually(90, || async {
        let list = deliveries(&app, &partner.token, &endpoint).await;
        list.iter()
            .filter(|(_, state)| state == "delivered")
            .count()
            >= 2
    })
    .await;
    eprintln!(
        "dispatch resumed {:?} after PostgreSQL came back",
        restored.elapsed()
    );
    assert!(resumed, "dispatch did not resume");
    let all_delivered = eventually(90, || async {
        let list = deliveries(&app, &partner.token, &endpoint).await;
        list.len() == 3 && list.iter().all(|(_, state)| state == "delivered")
    })
    .await;
    let list = deliveries(&app, &partner.token, &endpoint).await;
    assert!(all_delivered, "not every delivery arrived: {list:?}");
    // Every event reached the receiver; one that came twice (its outcome was lost in the cut)
    // carried the same webhook-id both times.
    let expected: HashSet<String> = list.into_iter().map(|(id, _)| id).collect();
    let received = receiver.ids();
    let got: HashSet<String> = received.iter().cloned().collect();
    assert_eq!(got, expected, "received {received:?}");
    shutdown.cancel();
    for handle in background {
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }
}

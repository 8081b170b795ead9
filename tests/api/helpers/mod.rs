#![allow(dead_code)] // Each test uses the part of the harness it needs.

//! The harness: each test gets the real app on a random port, its own PostgreSQL database
//! (copied from a migrated template, [`database`]) and its own Redis key prefix, so tests run
//! in parallel. [`TestApp`] speaks HTTP to it; its methods are grouped by capability, one file
//! each, so that a test reads like a partner using the API (`app.convert(...)`,
//! `app.quoted(...)`, `app.register_webhook(...)`).

mod access;
mod auth;
mod binary;
mod conversions;
mod database;
mod private_redis;
mod quotes;
mod rates;
mod replica;
mod tasks;
mod webhooks;

pub use auth::{TEST_PASSWORD, TestUser};
pub use binary::{Server, free_port};
pub use database::{fresh_database, fresh_empty_database};
pub use private_redis::PrivateRedis;
pub use rates::{EUR_RATES, spawn_app_with_rates};
pub use replica::{ReplicaLock, poll, spawn_app_with_replica};
pub use tasks::task_queue;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use currency_conversion::auth::Auth;
use currency_conversion::clock::Clock;
use currency_conversion::rates::Rates;
use currency_conversion::settings::{self, Environment, Settings};
use currency_conversion::startup::Application;
use currency_conversion::state::AppState;
use currency_conversion::tasks::{TaskRegistry, Tasks};
use currency_conversion::webhooks::Webhooks;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The separate `/metrics` listener's port (`metrics.expose = "separate"`).
    pub metrics_port: Option<u16>,
    /// Where that listener is bound.
    pub metrics_address: Option<std::net::SocketAddr>,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub db_name: String,
    pub settings: Settings,
    pub clock: Clock,
    pub state: AppState,
    /// The app's own auth handle (its token keys and status memo).
    pub auth: Auth,
    /// The app's own rates handle: storing through it refreshes the app's cache at once.
    pub rates: Rates,
    /// The app's task registry (every job of the service, with its context).
    pub tasks: std::sync::Arc<TaskRegistry>,
    /// The app's task queue handle (enqueue, retry, stats, workers).
    pub task_queue: Tasks,
    /// The app's webhooks context (the `deliver_webhooks` job's too).
    pub webhooks: Webhooks,
    /// The app's conversions handle (the same group committer the routes write with).
    pub conversions: currency_conversion::conversions::Conversions,
    admin_url: String,
}

/// The settings every test starts from: `settings/test.toml` plus DATABASE_URL/REDIS_URL from
/// the environment when set (other machines), never the other CCS__ overrides.
pub fn base_settings() -> Settings {
    let env = std::env::vars().filter(|(k, _)| k == "DATABASE_URL" || k == "REDIS_URL");
    settings::load_from(Path::new("settings"), Environment::Test, env).expect("test settings load")
}

pub fn test_settings_with(db_url: &str, customise: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = base_settings();
    s.database.url = SecretString::from(db_url.to_owned());
    s.redis.key_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    customise(&mut s);
    s
}

static TELEMETRY: OnceLock<()> = OnceLock::new();

/// What every app of this test process logged, as production writes it (JSON lines): the auth
/// lines from `info`, the rest from `warn` (`RUST_LOG` overrides). With `TEST_LOG` set, echoed to
/// stderr as well.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogCapture {
    echo: bool,
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        if self.echo {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines logged so far (by every test of this process) that contain `needle`.
pub fn logged_lines_with(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOGS.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the real application with settings adjusted by `customise`.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    TELEMETRY.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let echo = std::env::var("TEST_LOG").is_ok();
        let mut log = base_settings().log;
        log.format = settings::LogFormat::Json;
        log.level = "warn,currency_conversion::auth=info".parse().unwrap();
        currency_conversion::telemetry::init_writing_to(&log, move || LogCapture { echo }, false);
    });
    let base = base_settings();
    let (db_url, db_name) = fresh_database(&base).await;
    let settings = test_settings_with(&db_url, customise);
    let clock = Clock::manual(chrono::Utc::now());
    let app = Application::build(settings.clone(), clock.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let metrics_address = app.metrics_address();
    let db = app.state().db.clone();
    let state = app.state().clone();
    let rates = app.rates().clone();
    let auth = app.auth().clone();
    let tasks = app.tasks().clone();
    let task_queue = app.task_queue().clone();
    let webhooks = app.webhooks().clone();
    let conversions = app.conversions().clone();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        metrics_address,
        client,
        db,
        db_name,
        settings,
        clock,
        state,
        auth,
        rates,
        tasks,
        task_queue,
        webhooks,
        conversions,
        admin_url: base.database.url.expose_secret().to_owned(),
    }
}

// HTTP as any client speaks it.
impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// POSTs `{}` with a token and returns the status; owns its inputs so many can race.
    pub fn post_json_owned(
        &self,
        path: String,
        token: String,
    ) -> impl std::future::Future<Output = u16> + 'static {
        let req = self
            .client
            .post(self.url(&path))
            .bearer_auth(token)
            .json(&serde_json::json!({}));
        async move { req.send().await.unwrap().status().as_u16() }
    }

    pub async fn patch_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: &str,
    ) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropping the database needs async I/O; do it on a throwaway runtime in a thread so
        // that Drop works from inside the test's own runtime.
        let db_name = self.db_name.clone();
        let admin_url = self.admin_url.clone();
        let prefix = self.settings.redis.key_prefix.clone();
        let redis_url = self.settings.redis.url.expose_secret().to_owned();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Not `pool.close()`: connections opened on the test's runtime could only be
                // closed by that runtime, which is blocked here. FORCE ends them server-side.
                let options: PgConnectOptions = admin_url.parse().unwrap();
                if let Ok(mut admin) =
                    PgConnection::connect_with(&options.database("postgres")).await
                {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
                        )))
                        .await;
                }
                if let Ok(client) = redis::Client::open(redis_url) {
                    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{prefix}*"))
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> =
                                redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                        }
                    }
                }
            });
        })
        .join();
    }
}

/// Asserts a response is problem+json with the given status and `type`, and returns the body.
pub async fn assert_problem(
    res: reqwest::Response,
    status: u16,
    problem_type: &str,
) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type was {content_type}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["type"], problem_type, "body: {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

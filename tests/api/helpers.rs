#![allow(dead_code)] // Each test uses the part of the harness it needs.

//! The harness: each test gets the real app on a random port, its own PostgreSQL database
//! (copied from a migrated template) and its own Redis key prefix, so tests run in parallel.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use currency_conversion::auth::{Auth, Role};
use currency_conversion::clock::Clock;
use currency_conversion::rates::Rates;
use currency_conversion::settings::{self, Environment, Settings};
use currency_conversion::startup::Application;
use currency_conversion::state::{AppState, ProcessRole};
use currency_conversion::tasks::{self, TaskRegistry, TaskStats, Tasks};
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
    admin_url: String,
}

/// The settings every test starts from: `settings/test.toml` plus DATABASE_URL/REDIS_URL from
/// the environment when set (other machines), never the other CCS__ overrides.
pub fn base_settings() -> Settings {
    let env = std::env::vars().filter(|(k, _)| k == "DATABASE_URL" || k == "REDIS_URL");
    settings::load_from(Path::new("settings"), Environment::Test, env).expect("test settings load")
}

/// The task queue handle of a process with `state`'s pools, clock and settings.
pub fn task_queue(state: &AppState) -> Tasks {
    Tasks::new(
        state.db.clone(),
        state.redis.clone(),
        state.clock.clone(),
        &state.settings,
    )
}

fn maintenance_options(settings: &Settings) -> PgConnectOptions {
    let options: PgConnectOptions = settings.database.url.expose_secret().parse().unwrap();
    options.database("postgres")
}

/// Name of the template database: derived from the migrations, so a changed migration gets a
/// fresh template and an unchanged one is reused across runs.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut entries: Vec<_> = std::fs::read_dir("migrations")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        path.file_name().hash(&mut hasher);
        std::fs::read(&path).unwrap().hash(&mut hasher);
    }
    format!("ccs_test_template_{:016x}", hasher.finish())
}

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// How long a template of another migration set may go unused before a test run drops it. Far
/// longer than any test run, so that a run still using an older set (another checkout, another
/// branch) is never pulled from under it.
const STALE_TEMPLATE_SECS: i64 = 6 * 3600;

/// What a template's comment says: when a test run last started from it.
const LAST_USED: &str = "ccs test template, last used at ";

/// Drops the templates of earlier migration sets that no test run has used for
/// [`STALE_TEMPLATE_SECS`], and half-built ones. Called under the template lock, so nobody is
/// building one meanwhile. Marks `current` as used now; a template without a mark (from before
/// marks existed) gets one now and is dropped when it has gone unused that long since.
async fn drop_stale_templates(admin: &mut PgConnection, current: &str) {
    let now = chrono::Utc::now().timestamp();
    let mark = |name: &str| {
        sqlx::AssertSqlSafe(format!(
            "COMMENT ON DATABASE \"{name}\" IS '{LAST_USED}{now}'"
        ))
    };
    admin.execute(mark(current)).await.unwrap();
    let others: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
         WHERE datname LIKE 'ccs\\_test\\_template\\_%' AND datname <> $1",
    )
    .bind(current)
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    for (name, comment) in others {
        let last_used = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(LAST_USED))
            .and_then(|t| t.parse::<i64>().ok());
        let stale =
            name.ends_with("_building") || last_used.is_some_and(|t| now - t > STALE_TEMPLATE_SECS);
        if stale {
            // Fails harmlessly if something is connected to it after all.
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\""
                )))
                .await;
        } else if last_used.is_none() {
            let _ = admin.execute(mark(&name)).await;
        }
    }
}

async fn template(settings: &Settings) -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = PgConnection::connect_with(&maintenance_options(settings))
                .await
                .expect("PostgreSQL must be running for the tests (see README)");
            // Several test processes may race to build it; one builds, the others wait.
            admin
                .execute("SELECT pg_advisory_lock(72217001)")
                .await
                .unwrap();
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{building}\""
                    )))
                    .await
                    .unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "CREATE DATABASE \"{building}\""
                    )))
                    .await
                    .unwrap();
                let mut conn =
                    PgConnection::connect_with(&maintenance_options(settings).database(&building))
                        .await
                        .unwrap();
                currency_conversion::db::MIGRATOR
                    .run(&mut conn)
                    .await
                    .expect("migrations apply");
                conn.close().await.unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
                    )))
                    .await
                    .unwrap();
            }
            drop_stale_templates(&mut admin, &name).await;
            admin
                .execute("SELECT pg_advisory_unlock(72217001)")
                .await
                .unwrap();
            admin.close().await.ok();
            name
        })
        .await
        .clone()
}

/// Creates a fresh database from the template and returns its URL and name.
pub async fn fresh_database(settings: &Settings) -> (String, String) {
    let template = template(settings).await;
    let name = format!("ccs_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&maintenance_options(settings))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        )))
        .await
        .unwrap();
    admin.close().await.ok();
    let url = format!(
        "{}/{}",
        settings
            .database
            .url
            .expose_secret()
            .rsplit_once('/')
            .unwrap()
            .0,
        name
    );
    (url, name)
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
        admin_url: base.database.url.expose_secret().to_owned(),
    }
}

pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// A user created for a test, with a valid access token.
pub struct TestUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Creates a user directly (as the CLI would) and logs it in over HTTP.
    pub async fn create_user(&self, role: Role) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let user = currency_conversion::auth::service::create_user(
            &self.auth,
            &email,
            TEST_PASSWORD,
            role,
            "Test user",
        )
        .await
        .unwrap();
        let tokens = self.login(&email, TEST_PASSWORD).await;
        TestUser {
            id: user.id,
            email,
            token: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn admin(&self) -> TestUser {
        self.create_user(Role::Admin).await
    }

    pub async fn partner(&self) -> TestUser {
        self.create_user(Role::Partner).await
    }

    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let res = self
            .post_json(
                "/api/v1/auth/token",
                &serde_json::json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(res.status(), 200, "login failed");
        res.json().await.unwrap()
    }

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

    /// The default currency set (ECB's currencies plus EGP), as `seed` creates it.
    pub async fn seed_currencies(&self) {
        currency_conversion::currencies::service::seed_defaults(&self.db, self.clock.now())
            .await
            .unwrap();
    }

    /// Stores EUR-based rates as a Frankfurter publication at the current (test) time.
    pub async fn store_rates(&self, rates: &[(&str, &str)]) {
        use currency_conversion::currencies::CurrencyCode;
        use currency_conversion::money::Rate;
        use currency_conversion::rates::provider::{ProviderKind, Snapshot};
        let snapshot = Snapshot {
            provider: ProviderKind::Frankfurter,
            base: CurrencyCode::parse("EUR").unwrap(),
            as_of: self.clock.now(),
            quotes: rates
                .iter()
                .map(|(c, r)| (CurrencyCode::parse(c).unwrap(), Rate::parse(r).unwrap()))
                .collect(),
            ignored_codes: 0,
            missing: Vec::new(),
        };
        let known = currency_conversion::rates::service::known_currencies(&self.rates)
            .await
            .unwrap();
        currency_conversion::rates::service::store_snapshot(
            &self.rates,
            snapshot,
            &known,
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    }

    /// Converts `amount` of `from` into `to` as the partner of `token` (`POST /conversions`).
    pub async fn convert(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: &str,
    ) -> reqwest::Response {
        self.post_json(
            "/api/v1/conversions",
            &serde_json::json!({"from": from, "to": to, "amount": amount}),
            Some(token),
        )
        .await
    }

    /// Cancels conversion `id` as the partner of `token`.
    pub async fn cancel(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/conversions/{id}/cancel"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// The conversion history as the caller of `token` sees it; `query` is the query string
    /// without its `?` (empty for the first page of everything).
    pub async fn history(&self, token: &str, query: &str) -> reqwest::Response {
        let path = if query.is_empty() {
            "/api/v1/conversions".to_owned()
        } else {
            format!("/api/v1/conversions?{query}")
        };
        self.get_with_token(&path, token).await
    }

    /// Runs every queued run to completion with the app's own workers and task registry, as a
    /// worker process would, and returns the counts once nothing is queued or running. Runs
    /// parked for a later retry stay parked (move the clock and call it again).
    pub async fn run_pending_jobs(&self) -> TaskStats {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let workers = tasks::start_background(
            self.task_queue.clone(),
            self.tasks.clone(),
            ProcessRole::Worker,
            shutdown.clone(),
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let stats = loop {
            let stats = tasks::stats(&self.task_queue).await.unwrap();
            if stats.queued == 0 && stats.running == 0 {
                break stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "runs still pending after 30 s: {stats:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        shutdown.cancel();
        futures_util::future::join_all(workers).await;
        stats
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

// Conversions, batches and quotes: what a partner does with them, and the app's handles for
// running their use cases directly (as the jobs do).

/// EUR-based rates most conversion tests price against (units per 1 EUR).
pub const EUR_RATES: &[(&str, &str)] = &[("USD", "1.1"), ("GBP", "0.85"), ("JPY", "163.5")];

/// An app (settings adjusted by `customise`) with the default currencies and [`EUR_RATES`]
/// stored: ready to quote and convert.
pub async fn spawn_app_with_rates(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let app = spawn_app_with(customise).await;
    app.seed_currencies().await;
    app.store_rates(EUR_RATES).await;
    app
}

impl TestApp {
    /// The app's conversions handle (its pool, clock, `conversions.*` and rates), e.g. for
    /// `finalize_due` without going through the queue.
    pub fn conversions(&self) -> currency_conversion::conversions::Conversions {
        currency_conversion::conversions::Conversions::new(
            &self.rates,
            self.settings.conversions.clone(),
        )
    }

    /// The app's quotes handle, e.g. for `record_expiries` without going through the queue.
    pub fn quotes(&self) -> currency_conversion::quotes::Quotes {
        currency_conversion::quotes::Quotes::new(
            &self.rates,
            self.settings.quotes.clone(),
            self.idempotency_keys(),
        )
    }

    /// How long the app remembers an `Idempotency-Key` (`conversions.idempotency_ttl_secs`).
    pub fn idempotency_keys(&self) -> currency_conversion::idempotency::Keys {
        currency_conversion::idempotency::Keys::new(self.settings.conversions.idempotency_ttl_secs)
    }

    /// Asks for a quote of `from` → `to` held for `lock` (`none`, `five_minutes`, `hour`,
    /// `day`), for a fixed `amount` when given (`POST /quotes`).
    pub async fn quote(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: Option<&str>,
        lock: &str,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({"from": from, "to": to, "lock": lock});
        if let Some(amount) = amount {
            body["amount"] = amount.into();
        }
        self.post_json("/api/v1/quotes", &body, Some(token)).await
    }

    /// [`TestApp::quote`], asserting the quote was created; returns it.
    pub async fn quoted(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: Option<&str>,
        lock: &str,
    ) -> serde_json::Value {
        let res = self.quote(token, from, to, amount, lock).await;
        assert_eq!(res.status(), 201, "quote not created");
        res.json().await.unwrap()
    }

    /// A quote as its partner reads it now (`GET /quotes/{id}`).
    pub async fn get_quote(&self, token: &str, id: &serde_json::Value) -> reqwest::Response {
        let id = id.as_str().expect("a quote id");
        self.get_with_token(&format!("/api/v1/quotes/{id}"), token)
            .await
    }

    /// A conversion as the caller of `token` reads it (`GET /conversions/{id}`).
    pub async fn get_conversion(&self, token: &str, id: &serde_json::Value) -> reqwest::Response {
        let id = id.as_str().expect("a conversion id");
        self.get_with_token(&format!("/api/v1/conversions/{id}"), token)
            .await
    }

    /// Converts `amount` of `from` into `to` at the locked rate of quote `quote_id`, as
    /// [`TestApp::convert`] does at the rate in force (`POST /conversions` with `quote_id`).
    pub async fn convert_on_quote(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: &str,
        quote_id: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json(
            "/api/v1/conversions",
            &serde_json::json!({"from": from, "to": to, "amount": amount, "quote_id": quote_id}),
            Some(token),
        )
        .await
    }

    /// Sends `body` to `POST path` with `Idempotency-Key: key`, as a partner retrying safely
    /// does.
    pub async fn post_idempotently(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
        key: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends `body` to `POST /conversions` with `Idempotency-Key: key`, as a partner retrying
    /// safely does.
    pub async fn convert_idempotently(
        &self,
        token: &str,
        body: &serde_json::Value,
        key: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/conversions"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Converts `items` (a JSON array of `{from, to, amount[, quote_id]}`) all or nothing
    /// (`POST /conversions/batch`), with an `Idempotency-Key` when given.
    pub async fn convert_batch(
        &self,
        token: &str,
        items: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/api/v1/conversions/batch"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "items": items }));
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await.unwrap()
    }

    /// How many conversions are stored, of every partner and status.
    pub async fn stored_conversions(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM conversions")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks: what a partner does with its endpoints and their deliveries, and the dispatcher
// run as the `deliver_webhooks` job runs it.
// ---------------------------------------------------------------------------------------------

impl TestApp {
    /// Registers a webhook endpoint at `url` for `events` (a JSON array of event type names) as
    /// the partner of `token`, and returns the answer (with the signing secret). Fails the test
    /// unless the endpoint is created.
    pub async fn register_webhook(
        &self,
        token: &str,
        url: &str,
        events: serde_json::Value,
    ) -> serde_json::Value {
        let res = self
            .try_register_webhook(token, &serde_json::json!({"url": url, "events": events}))
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// Sends a webhook registration `body` as is, for tests of what is refused.
    pub async fn try_register_webhook(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json("/api/v1/webhooks", body, Some(token)).await
    }

    /// The live webhook endpoints of the partner of `token` (`{"data": [...]}`).
    pub async fn list_webhooks(&self, token: &str) -> serde_json::Value {
        let res = self.get_with_token("/api/v1/webhooks", token).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Deletes webhook endpoint `id`.
    pub async fn delete_webhook(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete(&format!("/api/v1/webhooks/{id}"), token).await
    }

    /// Rotates the signing secret of webhook endpoint `id`.
    pub async fn rotate_webhook_secret(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// Sends a `ping` to webhook endpoint `id` (`POST /webhooks/{id}/test`).
    pub async fn ping_webhook(&self, token: &str, id: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/test"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// The first page of webhook endpoint `id`'s deliveries, as answered.
    pub async fn webhook_deliveries(&self, token: &str, id: &str) -> reqwest::Response {
        self.get_with_token(&format!("/api/v1/webhooks/{id}/deliveries"), token)
            .await
    }

    /// The deliveries of webhook endpoint `id`, newest first. Fails the test unless they are
    /// shown.
    pub async fn webhook_delivery_list(&self, token: &str, id: &str) -> Vec<serde_json::Value> {
        let res = self.webhook_deliveries(token, id).await;
        assert_eq!(res.status(), 200);
        let page: serde_json::Value = res.json().await.unwrap();
        page["data"].as_array().unwrap().clone()
    }

    /// Retries `delivery` of webhook endpoint `id` by hand.
    pub async fn retry_webhook_delivery(
        &self,
        token: &str,
        id: &str,
        delivery: &str,
    ) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            &serde_json::json!({}),
            Some(token),
        )
        .await
    }

    /// Runs the webhook dispatcher once, as the `deliver_webhooks` job does; returns how many
    /// attempts it made.
    pub async fn dispatch_webhooks(&self) -> u64 {
        self.webhooks.dispatch_due().await.unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Partner access: more instances of one deployment, client credentials and the token grant.
// ---------------------------------------------------------------------------------------------

impl TestApp {
    /// Starts another instance of this deployment (the same database, Redis prefix, settings and
    /// clock) on a port of its own, as a second replica behind a load balancer; returns its base
    /// URL. It serves until the test ends.
    pub async fn another_instance(&self) -> String {
        let app = Application::build(self.settings.clone(), self.clock.clone())
            .await
            .expect("second instance builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    /// Creates a client credential named `name` as the caller of `token` (`POST /credentials`),
    /// for `partner_id` when given; returns the answer as is.
    pub async fn try_create_credential(
        &self,
        token: &str,
        name: &str,
        partner_id: Option<uuid::Uuid>,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({ "name": name });
        if let Some(id) = partner_id {
            body["partner_id"] = id.to_string().into();
        }
        self.post_json("/api/v1/credentials", &body, Some(token))
            .await
    }

    /// [`TestApp::try_create_credential`] for the partner of `token`, asserting it was created;
    /// returns it (with its `client_id` and `client_secret`).
    pub async fn create_credential(&self, token: &str, name: &str) -> serde_json::Value {
        let res = self.try_create_credential(token, name, None).await;
        assert_eq!(res.status(), 201, "credential not created");
        res.json().await.unwrap()
    }

    /// `POST /auth/token` with `form` as `application/x-www-form-urlencoded`, and HTTP Basic
    /// `(user, password)` when given.
    pub async fn token_form(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .client
            .post(self.url("/api/v1/auth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((user, password)) = basic {
            req = req.basic_auth(user, Some(password));
        }
        req.send().await.unwrap()
    }

    /// An access token for `credential` (as [`TestApp::create_credential`] returned it) by the
    /// `client_credentials` grant with HTTP Basic; fails the test unless one is issued.
    pub async fn client_token(&self, credential: &serde_json::Value) -> String {
        let res = self
            .token_form(
                &[("grant_type", "client_credentials")],
                Some((
                    credential["client_id"].as_str().unwrap(),
                    credential["client_secret"].as_str().unwrap(),
                )),
            )
            .await;
        assert_eq!(res.status(), 200, "no client token");
        let body: serde_json::Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// A redis-server of the test's own on a free port, for outage tests: killing it touches
/// nobody else's Redis. Killed when dropped.
pub struct PrivateRedis {
    child: Option<std::process::Child>,
    pub url: String,
}

impl PrivateRedis {
    /// Starts one and waits (with a deadline) until it answers PING.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (the outage tests start their own)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "private redis-server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Self {
            child: Some(child),
            url,
        }
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

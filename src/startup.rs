//! Wiring: builds the shared state, the HTTP server and the background pieces for a role, and
//! binds the listener before returning so that tests can ask for port 0 and read the real port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::Clock;
use crate::error;
use crate::metrics::Metrics;
use crate::redis_client::Redis;
use crate::settings::Settings;
use crate::tasks::TaskRegistry;

/// Which pieces a process runs, so one binary can scale out as separate processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// HTTP API, scheduler and workers in one process.
    All,
    /// HTTP API only.
    Api,
    /// Queue workers only.
    Worker,
    /// Cron scheduler (and the queue reconciler) only.
    Scheduler,
}

impl Role {
    pub fn serves_http(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
}

/// Everything a handler or job needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: Redis,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Latest-rates cache and provider client of this process.
    pub rates: Arc<crate::rates::RatesRuntime>,
    /// Recently checked access tokens of this process (see `auth::status_cache`).
    pub token_memo: Arc<crate::auth::status_cache::StatusMemo>,
}

impl AppState {
    pub fn new(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        Ok(Self {
            db: crate::db::pool(&settings.database)?,
            redis: Redis::new(&settings.redis)?,
            settings: Arc::new(settings),
            clock,
            rates: Arc::default(),
            token_memo: Arc::default(),
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    tasks: Arc<TaskRegistry>,
}

impl Application {
    /// Migrates the database and binds the HTTP listener. Does not start serving until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let tasks = crate::jobs::registry(&settings)?;
        Self::build_with_tasks(settings, clock, tasks).await
    }

    /// [`Application::build`] with a given task registry (tests register their own jobs).
    pub async fn build_with_tasks(
        settings: Settings,
        clock: Clock,
        tasks: TaskRegistry,
    ) -> anyhow::Result<Self> {
        crate::db::create_and_migrate(&settings.database).await?;
        let tasks = Arc::new(tasks);
        let state = AppState::new(settings, clock)?;
        let address = format!(
            "{}:{}",
            state.settings.server.host, state.settings.server.port
        );
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("server.host/server.port: cannot bind {address}"))?;
        let port = listener.local_addr()?.port();
        let server = http_server(listener, state.clone(), tasks.clone())?;
        Ok(Self {
            port,
            server,
            state,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The task registry the app was built with.
    pub fn tasks(&self) -> &Arc<TaskRegistry> {
        &self.tasks
    }

    /// Serves HTTP only (no workers, no scheduler) until SIGTERM/SIGINT (actix handles both):
    /// stops accepting, lets in-flight requests finish within `server.shutdown_timeout_secs`.
    /// Tests use this for a quiet app.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves HTTP and runs the background tasks of `role` until SIGTERM/SIGINT, then stops the
    /// background tasks, giving a running job `server.shutdown_timeout_secs` to finish.
    pub async fn run(self, role: Role) -> anyhow::Result<()> {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let background =
            crate::tasks::start_background(self.state.clone(), self.tasks, role, shutdown.clone());
        let served = self.server.await;
        stop_background(&self.state, shutdown, background).await;
        served.context("HTTP server failed")
    }
}

/// Runs the background tasks of a role without HTTP (`serve --role worker|scheduler`) until
/// SIGTERM/SIGINT.
pub async fn run_background_only(
    settings: Settings,
    clock: Clock,
    role: Role,
) -> anyhow::Result<()> {
    crate::db::create_and_migrate(&settings.database).await?;
    let tasks = Arc::new(crate::jobs::registry(&settings)?);
    let state = AppState::new(settings, clock)?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let background = crate::tasks::start_background(state.clone(), tasks, role, shutdown.clone());
    wait_for_signal().await;
    stop_background(&state, shutdown, background).await;
    Ok(())
}

async fn stop_background(
    state: &AppState,
    shutdown: tokio_util::sync::CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
) {
    shutdown.cancel();
    // Workers give their job the shutdown timeout; a little more for recording the outcome.
    let limit = state.settings.shutdown_timeout() + std::time::Duration::from_secs(5);
    if tokio::time::timeout(limit, futures_util::future::join_all(handles))
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop in time");
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Registers every capability's routes; used by the server and by the OpenAPI test.
pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::health::configure(cfg);
    cfg.service(
        web::scope("/api/v1")
            .configure(crate::auth::routes::configure)
            .configure(crate::currencies::routes::configure)
            .configure(crate::rates::routes::configure)
            .configure(crate::conversions::routes::configure)
            .configure(crate::tasks::routes::configure),
    );
    crate::monitor::configure(cfg);
}

fn http_server(
    listener: TcpListener,
    state: AppState,
    tasks: Arc<TaskRegistry>,
) -> anyhow::Result<Server> {
    let tasks = web::Data::from(tasks);
    let settings = state.settings.clone();
    let metrics = web::Data::new(Metrics::default());
    let data = web::Data::new(state);
    let openapi = crate::openapi::document();
    let body_limit = settings.server.body_limit_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(
                ErrorHandlers::new()
                    .default_handler_client(error::ensure_problem_json)
                    .default_handler_server(error::ensure_problem_json)
                    .handler(StatusCode::NOT_FOUND, error::ensure_problem_json),
            )
            .wrap(from_fn(crate::middleware::json_objects_only))
            .wrap(from_fn(crate::middleware::request_context))
            .app_data(data.clone())
            .app_data(tasks.clone())
            .app_data(metrics.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(error::json_error),
            )
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .configure(routes)
            .service(web::redirect("/docs", "/docs/"))
            .service(SwaggerUi::new("/docs/{_:.*}").external_url_unchecked("/api-docs/openapi.json", openapi.clone()))
            .default_service(web::to(error::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(settings.shutdown_timeout().as_secs());
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

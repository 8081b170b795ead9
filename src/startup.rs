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
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::Clock;
use crate::error;
use crate::metrics::Metrics;
use crate::openapi::ApiDoc;
use crate::redis_client::Redis;
use crate::settings::Settings;

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
}

impl AppState {
    pub fn new(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        Ok(Self {
            db: crate::db::pool(&settings.database)?,
            redis: Redis::new(&settings.redis)?,
            settings: Arc::new(settings),
            clock,
            rates: Arc::default(),
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Migrates the database and binds the HTTP listener. Does not start serving until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        crate::db::create_and_migrate(&settings.database).await?;
        let state = AppState::new(settings, clock)?;
        let address = format!(
            "{}:{}",
            state.settings.server.host, state.settings.server.port
        );
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("server.host/server.port: cannot bind {address}"))?;
        let port = listener.local_addr()?.port();
        let server = http_server(listener, state.clone())?;
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM/SIGINT (actix handles both): stops accepting, lets in-flight requests
    /// finish within `server.shutdown_timeout_secs`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Registers every capability's routes; used by the server and by the OpenAPI test.
pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::health::configure(cfg);
    cfg.service(
        web::scope("/api/v1")
            .configure(crate::auth::routes::configure)
            .configure(crate::currencies::routes::configure)
            .configure(crate::rates::routes::configure)
            .configure(crate::conversions::routes::configure),
    );
}

fn http_server(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    let metrics = web::Data::new(Metrics::default());
    let data = web::Data::new(state);
    let openapi = ApiDoc::openapi();
    let body_limit = settings.server.body_limit_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(
                ErrorHandlers::new()
                    .default_handler_client(error::ensure_problem_json)
                    .default_handler_server(error::ensure_problem_json)
                    .handler(StatusCode::NOT_FOUND, error::ensure_problem_json),
            )
            .wrap(from_fn(crate::middleware::request_context))
            .app_data(data.clone())
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
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", openapi.clone()))
            .default_service(web::to(error::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(settings.shutdown_timeout().as_secs());
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

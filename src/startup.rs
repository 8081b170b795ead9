//! Wiring: builds the shared state, the HTTP server and the background pieces for a role, and
//! binds the listener before returning so that tests can ask for port 0 and read the real port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use utoipa_swagger_ui::SwaggerUi;

use crate::access::Access;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::conversions::Conversions;
use crate::currencies::CurrencyEvents;
use crate::error;
use crate::head_guard::{self, HeadGuard};
use crate::health::Health;
use crate::idempotency::Keys;
use crate::metrics::Metrics;
use crate::middleware::Pipeline;
use crate::monitor::Monitor;
use crate::quotes::Quotes;
use crate::rates::pricing::PricingRules;
use crate::rates::{CurrencyWatcher, Rates};
use crate::settings::{MetricsExposure, Settings};
pub use crate::state::{AppState, ProcessRole};
use crate::tasks::{TaskRegistry, Tasks};
use crate::webhooks::Webhooks;

/// The per-process pieces built once and handed to routes and jobs: the core state, each
/// capability's context (rates with its cache, auth with its token keys and status memo, the
/// task queue, conversions, quotes, webhooks) and the currency listeners.
#[derive(Clone)]
struct Parts {
    state: AppState,
    rates: Rates,
    auth: Auth,
    access: Access,
    tasks: Tasks,
    conversions: Conversions,
    quotes: Quotes,
    webhooks: Webhooks,
    events: CurrencyEvents,
}

impl Parts {
    /// Builds the capabilities' contexts from the core state, and the task registry with them.
    fn build(state: AppState) -> anyhow::Result<(Self, Arc<TaskRegistry>)> {
        let rates = Rates::new(
            state.reads.clone(),
            state.redis.clone(),
            state.clock.clone(),
            state.settings.rates.clone(),
            PricingRules::from_settings(&state.settings.conversions, &state.settings.pricing),
            state.settings.tasks.schedule.fetch_rates.clone(),
        );
        let tasks = Tasks::new(
            state.db.clone(),
            state.redis.clone(),
            state.clock.clone(),
            &state.settings,
        );
        let keys = Keys::new(state.settings.conversions.idempotency_ttl_secs);
        let webhooks = Webhooks::new(
            state.db.clone(),
            state.redis.clone(),
            state.clock.clone(),
            &state.settings.webhooks,
            keys,
        )?;
        let conversions = Conversions::new(&rates, state.settings.conversions.clone());
        let quotes = Quotes::new(&rates, state.settings.quotes.clone(), keys);
        let registry = Arc::new(crate::jobs::registry(
            &tasks,
            &rates,
            &conversions,
            &quotes,
            &webhooks,
            crate::retention::Retention::new(
                state.db.clone(),
                state.clock.clone(),
                &state.settings,
            ),
        )?);
        let mut events = CurrencyEvents::new();
        events.subscribe(Arc::new(CurrencyWatcher {
            rates: rates.clone(),
            tasks: tasks.clone(),
            registry: registry.clone(),
        }));
        let parts = Self {
            auth: auth(&state),
            access: Access::new(
                state.db.clone(),
                state.redis.clone(),
                state.clock.clone(),
                &state.settings.limits,
                &state.settings.usage,
            ),
            state,
            rates,
            tasks,
            conversions,
            quotes,
            webhooks,
            events,
        };
        Ok((parts, registry))
    }
}

/// The auth handle of a process: its token keys are derived here, once.
pub fn auth(state: &AppState) -> Auth {
    Auth::new(
        state.db.clone(),
        state.redis.clone(),
        state.clock.clone(),
        &state.settings.auth,
        &state.settings.server.trusted_proxies,
    )
}

pub struct Application {
    port: u16,
    server: Server,
    /// The listener of its own for `/metrics` (`metrics.expose = "separate"`), and where it is
    /// bound.
    metrics_server: Option<(std::net::SocketAddr, Server)>,
    parts: Parts,
    tasks: Arc<TaskRegistry>,
}

impl Application {
    /// Migrates the database and binds the HTTP listener. Does not start serving until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        crate::db::create_and_migrate(&settings.database).await?;
        let (parts, tasks) = Parts::build(AppState::new(settings, clock)?)?;
        ensure_partitions(&parts).await;
        let state = &parts.state;
        let address = format!(
            "{}:{}",
            state.settings.server.host, state.settings.server.port
        );
        let listener = TcpListener::bind(&address).map_err(|e| bind_error(&address, e))?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(Metrics::new());
        let server = http_server(listener, parts.clone(), tasks.clone(), metrics.clone())?;
        let metrics_server = match state.settings.metrics.expose {
            MetricsExposure::Separate => {
                let metrics_settings = &state.settings.metrics;
                let (address, narrowed) =
                    metrics_settings.listen_address(state.settings.environment)?;
                let listener = TcpListener::bind(address)
                    .with_context(|| format!("metrics.address: cannot bind {address}"))?;
                let bound = listener.local_addr()?;
                match narrowed {
                    Some(why) => tracing::warn!(
                        address = %bound,
                        configured = metrics_settings.address,
                        "{why}"
                    ),
                    None => tracing::info!(
                        address = %bound,
                        token = metrics_settings.bearer_token.is_some(),
                        "metrics listener"
                    ),
                }
                Some((bound, metrics_server(listener, state, metrics)?))
            }
            MetricsExposure::Api | MetricsExposure::Off => None,
        };
        Ok(Self {
            port,
            server,
            metrics_server,
            parts,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_address().map(|a| a.port())
    }

    /// Where the separate `/metrics` listener is bound, when there is one.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(|(address, _)| *address)
    }

    pub fn state(&self) -> &AppState {
        &self.parts.state
    }

    /// The rates handle (cache and provider client) the app serves from.
    pub fn rates(&self) -> &Rates {
        &self.parts.rates
    }

    /// The auth handle the app serves with (the same token keys and status memo).
    pub fn auth(&self) -> &Auth {
        &self.parts.auth
    }

    /// The task registry the app was built with.
    pub fn tasks(&self) -> &Arc<TaskRegistry> {
        &self.tasks
    }

    /// The task queue handle the app enqueues with.
    pub fn task_queue(&self) -> &Tasks {
        &self.parts.tasks
    }

    /// The webhooks context the app serves and delivers with.
    pub fn webhooks(&self) -> &Webhooks {
        &self.parts.webhooks
    }

    /// The conversions handle the app serves with (its group committer among them).
    pub fn conversions(&self) -> &Conversions {
        &self.parts.conversions
    }

    /// Serves HTTP only (no workers, no scheduler) until SIGTERM/SIGINT (actix handles both):
    /// stops accepting, lets in-flight requests finish within `server.shutdown_timeout_secs`.
    /// Tests use this for a quiet app.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        serve_counting_usage(
            self.parts.access,
            self.server,
            self.metrics_server.map(|(_, s)| s),
        )
        .await
    }

    /// Serves HTTP and runs the background tasks of `role` until SIGTERM/SIGINT, then stops the
    /// background tasks, giving a running job `server.shutdown_timeout_secs` to finish.
    pub async fn run(self, role: ProcessRole) -> anyhow::Result<()> {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let commits = self.parts.conversions.commits.clone();
        tokio::spawn(async move { commits.open_writers().await });
        let background = crate::tasks::start_background(
            self.parts.tasks.clone(),
            self.tasks,
            role,
            shutdown.clone(),
        );
        let served = serve_counting_usage(
            self.parts.access.clone(),
            self.server,
            self.metrics_server.map(|(_, s)| s),
        )
        .await;
        stop_background(&self.parts.state, shutdown, background).await;
        served.context("HTTP server failed")
    }
}

/// [`serve`], with this instance's usage counts written while it serves and once more when it
/// has stopped (after the last request was answered).
async fn serve_counting_usage(
    access: Access,
    api: Server,
    metrics: Option<Server>,
) -> std::io::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let flusher = tokio::spawn(crate::access::usage::run_flusher(access, stop.clone()));
    let served = serve(api, metrics).await;
    stop.cancel();
    if let Err(e) = flusher.await {
        tracing::error!(error = %e, "the usage flusher failed");
    }
    served
}

/// Serves the API until it stops (SIGTERM/SIGINT), and the metrics listener, if any, as long.
async fn serve(api: Server, metrics: Option<Server>) -> std::io::Result<()> {
    let Some(metrics) = metrics else {
        return api.await;
    };
    let metrics_handle = metrics.handle();
    let api = async {
        let served = api.await;
        metrics_handle.stop(true).await;
        served
    };
    let (served, metrics_served) = futures_util::future::join(api, metrics).await;
    if let Err(e) = metrics_served {
        tracing::error!(error = %e, "the metrics listener failed");
    }
    served
}

/// Runs the background tasks of a role without HTTP (`serve --role worker|scheduler`) until
/// SIGTERM/SIGINT.
pub async fn run_background_only(
    settings: Settings,
    clock: Clock,
    role: ProcessRole,
) -> anyhow::Result<()> {
    crate::db::create_and_migrate(&settings.database).await?;
    let (parts, tasks) = Parts::build(AppState::new(settings, clock)?)?;
    ensure_partitions(&parts).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let background =
        crate::tasks::start_background(parts.tasks.clone(), tasks, role, shutdown.clone());
    wait_for_signal().await;
    stop_background(&parts.state, shutdown, background).await;
    Ok(())
}

/// Creates the monthly partitions of `conversions` this process will write into, if missing,
/// without waiting for `maintain_partitions`'s next run. A failure does not stop the start:
/// rows of a month without a partition go to the default partition meanwhile.
async fn ensure_partitions(parts: &Parts) {
    let now = parts.state.clock.now();
    match crate::conversions::partitions::ensure_ahead(&parts.state.db, now).await {
        Ok(created) if !created.is_empty() => {
            tracing::info!(?created, "conversions partitions created");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            error = %e,
            "could not create the conversions partitions ahead; maintain_partitions will retry"
        ),
    }
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
            // Rates first: their paths are all static, so the busiest reads (`/rates/latest`,
            // `/convert`) are routed without first trying the other modules' patterns with
            // parameters (a regular expression each); no other route can match them.
            .configure(crate::rates::routes::configure)
            .configure(crate::auth::routes::configure)
            .configure(crate::access::routes::configure)
            .configure(crate::currencies::routes::configure)
            // One resource per path: POST is a conversion, GET the history.
            .service(
                web::resource("/conversions")
                    .route(web::post().to(crate::conversions::routes::create))
                    .route(web::get().to(crate::history::routes::list)),
            )
            .service(
                web::resource("/conversions/summary")
                    .route(web::get().to(crate::history::routes::summary)),
            )
            .configure(crate::conversions::routes::configure)
            .configure(crate::quotes::routes::configure)
            .configure(crate::markups::routes::configure)
            .configure(crate::history::routes::configure_reports)
            .configure(crate::webhooks::routes::configure)
            .configure(crate::tasks::routes::configure),
    );
    crate::monitor::configure(cfg);
}

/// Swagger UI and the OpenAPI document, each only when its setting says so
/// (`server.swagger_ui`, `server.openapi_document`); otherwise they are plain 404s.
fn api_docs(
    cfg: &mut web::ServiceConfig,
    server: &crate::settings::ServerSettings,
    openapi: &serde_json::Value,
) {
    if server.swagger_ui {
        // Settings validation makes sure the document is served too: the UI loads it.
        cfg.service(web::redirect("/docs", "/docs/")).service(
            SwaggerUi::new("/docs/{_:.*}")
                .external_url_unchecked(OPENAPI_DOCUMENT_PATH, openapi.clone()),
        );
    } else if server.openapi_document {
        let document = openapi.clone();
        cfg.service(
            web::resource(OPENAPI_DOCUMENT_PATH).route(web::get().to(move || {
                let document = document.clone();
                async move { actix_web::HttpResponse::Ok().json(document) }
            })),
        );
    }
}

/// Where the OpenAPI document is served when `server.openapi_document` is on.
pub const OPENAPI_DOCUMENT_PATH: &str = "/api-docs/openapi.json";

fn http_server(
    listener: TcpListener,
    parts: Parts,
    tasks: Arc<TaskRegistry>,
    metrics: web::Data<Metrics>,
) -> anyhow::Result<Server> {
    let tasks = web::Data::from(tasks);
    let settings = parts.state.settings.clone();
    let metrics_on_api = settings.metrics.expose == MetricsExposure::Api;
    let health = web::Data::new(Health::new(
        parts.state.reads.clone(),
        parts.state.redis.clone(),
        &settings,
    ));
    let monitor = web::Data::new(Monitor::new(
        parts.state.db.clone(),
        parts.state.clock.clone(),
        parts.rates.clone(),
        parts.tasks.clone(),
        settings.rates.max_age_secs,
    ));
    let task_queue = web::Data::new(parts.tasks);
    let webhooks = web::Data::new(parts.webhooks);
    let rates = web::Data::new(parts.rates);
    let conversions = web::Data::new(parts.conversions);
    let quotes = web::Data::new(parts.quotes);
    let markups = web::Data::new(crate::markups::Markups {
        db: parts.state.db.clone(),
        clock: parts.state.clock.clone(),
        default_bps: parts.state.settings.pricing.default_markup_bps,
        max_bps: parts.state.settings.quotes.spread_bps.max_markup_bps(),
        schedules: rates.schedules.clone(),
    });
    let sessions = web::Data::new(crate::monitor::session::Sessions::new(
        parts.auth.clone(),
        settings.environment,
    ));
    let auth = web::Data::new(parts.auth);
    let access = web::Data::new(parts.access);
    let currencies = web::Data::new(crate::currencies::Currencies::new(
        parts.state.db.clone(),
        parts.state.redis.clone(),
        parts.state.clock.clone(),
        parts.events,
    ));
    let openapi = crate::openapi::document();
    let server_settings = settings.server.clone();
    let body_limit = settings.server.body_limit_bytes;
    let body_limits = crate::middleware::BodyLimits::new(body_limit).route(
        "/api/v1/conversions/batch",
        crate::conversions::routes::BATCH_BODY_LIMIT_BYTES,
    );
    let app = move || {
        App::new()
            .wrap(
                ErrorHandlers::new()
                    .default_handler_client(error::ensure_problem_json)
                    .default_handler_server(error::ensure_problem_json)
                    .handler(StatusCode::NOT_FOUND, error::ensure_problem_json),
            )
            .wrap(Pipeline::new(
                access.get_ref().clone(),
                auth.get_ref().clone(),
                metrics.clone(),
                body_limits.clone(),
            ))
            .app_data(rates.clone())
            .app_data(conversions.clone())
            .app_data(quotes.clone())
            .app_data(markups.clone())
            .app_data(auth.clone())
            .app_data(access.clone())
            .app_data(sessions.clone())
            .app_data(currencies.clone())
            .app_data(tasks.clone())
            .app_data(task_queue.clone())
            .app_data(webhooks.clone())
            .app_data(monitor.clone())
            .app_data(health.clone())
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
            .configure(|cfg| {
                if metrics_on_api {
                    crate::health::configure_metrics(cfg);
                }
            })
            .configure(|cfg| api_docs(cfg, &server_settings, &openapi))
            .route(
                &format!("{}/{{kind}}", head_guard::REJECTED_PATH),
                web::get().to(head_guard::refused),
            )
            .default_service(web::to(error::not_found))
    };
    // What `HttpServer::new(app).listen(listener)` builds, with each connection passed through
    // a [`HeadGuard`] first, so that an oversized request head is answered as problem+json
    // rather than by actix-http's bare 431 (see `head_guard`).
    let local_addr = listener.local_addr()?;
    let mut server = actix_server::Server::build()
        .listen("api", listener, move || {
            let app = app()
                .into_factory()
                .map_err(|e: actix_web::Error| e.error_response());
            let http = actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(KEEP_ALIVE))
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(local_addr)
                .finish(actix_service::map_config(app, |_| {
                    actix_web::dev::AppConfig::default()
                }));
            actix_service::fn_service(|io: tokio::net::TcpStream| async move {
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                Ok((HeadGuard::new(io), actix_http::Protocol::Http1, peer))
            })
            .and_then(http)
        })?
        .shutdown_timeout(settings.shutdown_timeout().as_secs());
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

/// How long an idle kept-alive connection stays open (actix-web's default).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a client has to send a request head (actix-web's default).
const CLIENT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a closing connection waits for the client (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the listener could not be bound, with what to do about it: a port in use is the usual
/// first-run surprise (another instance, or another service on 8080).
fn bind_error(address: &str, error: std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot bind {address}: the address is already in use (another instance or another \
             program listens there). Stop it, or choose another port: \
             CCS__SERVER__PORT=9000 make run (or server.port in settings/local.toml)"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot bind {address}: permission denied (ports below 1024 need privileges). \
             Choose another port with CCS__SERVER__PORT"
        ),
        _ => anyhow::Error::new(error).context(format!(
            "server.host/server.port: cannot bind {address} (set CCS__SERVER__HOST / CCS__SERVER__PORT)"
        )),
    }
}

/// The separate `/metrics` listener: that endpoint only, one worker.
fn metrics_server(
    listener: TcpListener,
    state: &AppState,
    metrics: web::Data<Metrics>,
) -> anyhow::Result<Server> {
    let shutdown = state.settings.shutdown_timeout().as_secs();
    let health = web::Data::new(Health::new(
        state.reads.clone(),
        state.redis.clone(),
        &state.settings,
    ));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(health.clone())
            .app_data(metrics.clone())
            .configure(crate::health::configure_metrics)
            .default_service(web::to(error::not_found))
    })
    .listen(listener)?
    .workers(1)
    .shutdown_timeout(shutdown)
    .run();
    Ok(server)
}

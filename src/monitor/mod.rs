//! Monitor: the admin's server-rendered pages under `/monitor` for background tasks and rate
//! health (it replaces the original's Flower dashboard). It owns no table: it reads through
//! [`crate::tasks`] and [`crate::rates`], acts through [`crate::tasks::enqueue`] and
//! [`crate::tasks::retry`], and signs admins in through [`crate::auth::service`].
//!
//! Pages are `maud` templates (checked at compile time, every interpolation HTML-escaped), one
//! stylesheet embedded in the binary, no script. Failures here are pages for people, not
//! problem+json: [`MonitorError`] renders them, and sends anyone without a valid admin session
//! to the login page.

pub mod chart;
pub mod cron_words;
pub mod data;
pub mod routes;
pub mod session;
pub mod views;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use chrono::TimeDelta;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::rates::Rates;
use crate::replica::ReadPool;
use crate::tasks::Tasks;

pub use routes::configure;

/// The login page, where every page without a session sends the browser.
pub const LOGIN_PATH: &str = "/monitor/login";
/// The monitor's one stylesheet.
pub const CSS_PATH: &str = "/monitor/static/monitor.css";
pub use session::MonitorSession;

/// What the monitor's pages read and act through: the pool (for run lists and counts of other
/// capabilities), the clock, the rates and task queue handles, and the one setting it shows.
/// Routes get it as `web::Data<Monitor>`. Signing in goes through the auth capability instead.
#[derive(Clone)]
pub struct Monitor {
    /// PostgreSQL, read through the tasks, quotes and webhooks modules' functions.
    pub db: PgPool,
    /// Where the charts read (the replica when current): they may be a moment behind.
    pub reads: ReadPool,
    /// Now, for relative times and the charts' ranges.
    pub clock: Clock,
    /// The latest rates, the providers' snapshots and series.
    pub rates: Rates,
    /// The queue, for stats, retries and runs started by hand.
    pub tasks: Tasks,
    /// `rates.max_age_secs`: rates older than this are shown as stale.
    pub rates_max_age: TimeDelta,
}

impl Monitor {
    /// The monitor over `rates` and `tasks`, showing rates older than `rates_max_age_secs`
    /// (`rates.max_age_secs`) as stale.
    pub fn new(
        db: PgPool,
        clock: Clock,
        rates: Rates,
        tasks: Tasks,
        rates_max_age_secs: u64,
    ) -> Self {
        Self {
            db,
            reads: rates.reads.clone(),
            clock,
            rates,
            tasks,
            rates_max_age: TimeDelta::seconds(crate::settings::secs(rates_max_age_secs)),
        }
    }
}

/// Why a monitor request gets no normal page.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// No session, an expired or logged-out one, or not an admin: go to the login page.
    #[error("login required")]
    LoginRequired,
    /// A state-changing form without this session's CSRF token.
    #[error("the form's CSRF token is missing or invalid")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::tasks::TaskError> for MonitorError {
    fn from(e: crate::tasks::TaskError) -> Self {
        use crate::tasks::TaskError as T;
        match e {
            T::UnknownTask(_) | T::RunNotFound(_) => MonitorError::NotFound(e.to_string()),
            T::NotRetryable { .. } => MonitorError::Conflict(e.to_string()),
            T::Unexpected(e) => MonitorError::Internal(e),
        }
    }
}

impl From<crate::rates::RatesError> for MonitorError {
    fn from(e: crate::rates::RatesError) -> Self {
        MonitorError::Internal(anyhow::Error::new(e))
    }
}

impl From<sqlx::Error> for MonitorError {
    fn from(e: sqlx::Error) -> Self {
        MonitorError::Internal(e.into())
    }
}

impl ResponseError for MonitorError {
    fn status_code(&self) -> StatusCode {
        match self {
            MonitorError::LoginRequired => StatusCode::SEE_OTHER,
            MonitorError::Csrf => StatusCode::FORBIDDEN,
            MonitorError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MonitorError::NotFound(_) => StatusCode::NOT_FOUND,
            MonitorError::Conflict(_) => StatusCode::CONFLICT,
            MonitorError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            MonitorError::LoginRequired => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, LOGIN_PATH))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish();
            }
            MonitorError::Csrf => {
                "This form has expired or did not come from the monitor. Go back, reload the page and try again.".to_owned()
            }
            MonitorError::BadRequest(m) | MonitorError::NotFound(m) | MonitorError::Conflict(m) => {
                m.clone()
            }
            MonitorError::Internal(e) => {
                tracing::error!(error = ?e, "monitor page failed");
                "Something went wrong on the server; the logs have the details.".to_owned()
            }
        };
        let status = self.status_code();
        let page = views::error_page(status.canonical_reason().unwrap_or("Error"), &message);
        routes::html(status, page)
    }
}

//! Handlers of `/monitor`: parse the request, call [`super::data`] or the tasks module, render a
//! [`super::views`] page. Every page but the login form takes a [`MonitorSession`], so an
//! anonymous visitor or a partner is sent to the login page; every POST but the login checks
//! the CSRF token first.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;
use serde::Deserialize;
use uuid::Uuid;

use super::session::{self, MonitorSession, Sessions};
use super::{LOGIN_PATH, Monitor, MonitorError, data, views};
use crate::auth::AuthError;
use crate::auth::domain::{LoginEmail, LoginPassword};
use crate::currencies::CurrencyCode;
use crate::tasks::{TaskRegistry, TaskState};

/// Embedded so that the binary serves it from any working directory.
const CSS: &str = include_str!("../../static/monitor.css");

/// Shown for a wrong password, an unknown email, a disabled account and a partner alike, so the
/// form tells nobody which accounts exist or which are admins.
const REFUSED: &str = "Those credentials do not open the monitor. Only admins can sign in here.";

/// Registers the monitor's pages at the root of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/monitor")
            .wrap(actix_web::middleware::from_fn(session::renew_cookie))
            .route("", web::get().to(overview))
            .route("/", web::get().to(overview))
            .route("/static/monitor.css", web::get().to(stylesheet))
            .route("/login", web::get().to(login_form))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/runs", web::get().to(runs))
            .route("/runs/{id}", web::get().to(run))
            .route("/runs/{id}/retry", web::post().to(retry))
            .route("/tasks/{name}/run", web::post().to(run_now))
            .route("/rates", web::get().to(rates)),
    );
}

/// An HTML response that no cache keeps and no other site frames.
pub fn html(status: StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(page.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(CSS)
}

async fn login_form(sessions: web::Data<Sessions>, req: HttpRequest) -> HttpResponse {
    // Already signed in: straight to the overview.
    if let Some(cookie) = req.cookie(session::COOKIE)
        && sessions.admin_from_token(cookie.value()).await.is_ok()
    {
        return see_other("/monitor");
    }
    login_page(&sessions, &req, StatusCode::OK, None, "")
}

/// The login form, with the CSRF token of the browser's pre-login nonce; a browser without one
/// (or with one this service could not have set) gets a new nonce cookie with the page.
fn login_page(
    sessions: &Sessions,
    req: &HttpRequest,
    status: StatusCode,
    message: Option<&str>,
    email: &str,
) -> HttpResponse {
    let (nonce, cookie) = match session::login_nonce(req) {
        Some(nonce) => (nonce, None),
        None => {
            let (nonce, cookie) = sessions.new_login_cookie();
            (nonce, Some(cookie))
        }
    };
    let csrf = sessions.login_csrf_token(&nonce);
    let mut res = html(status, views::login_page(message, email, &csrf));
    if let Some(cookie) = cookie {
        // A cookie built here always encodes into a valid header value.
        let _ = res.add_cookie(&cookie);
    }
    res
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    /// The form's CSRF token ([`Sessions::login_csrf_token`]).
    #[serde(default)]
    csrf: String,
}

/// Shown when a login post's CSRF token does not match the browser's pre-login cookie.
const FORM_EXPIRED: &str =
    "This login form has expired or did not come from the monitor. Try again.";

#[tracing::instrument(name = "monitor.login", skip_all)]
async fn login(
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, MonitorError> {
    let LoginForm {
        email,
        password,
        csrf,
    } = form.into_inner();
    let refused = |status: StatusCode, message: &str| {
        login_page(&sessions, &req, status, Some(message), &email)
    };
    // Before the credentials are looked at: a forged post neither signs in nor counts as a
    // failed attempt against the throttle.
    let nonce = session::login_nonce(&req);
    if sessions.verify_login_csrf(nonce.as_deref(), &csrf).is_err() {
        tracing::info!("monitor login refused: CSRF token missing or not this browser's");
        return Ok(refused(StatusCode::FORBIDDEN, FORM_EXPIRED));
    }
    let auth = &sessions.auth;
    let ip = crate::auth::routes::client_ip(auth, &req);
    // Blank fields are refused like wrong ones. The monitor keeps only a short-lived access
    // token, renewed while the admin is active: no refresh token is issued for it.
    let started = match (LoginEmail::parse(&email), LoginPassword::parse(password)) {
        (Ok(email), Ok(password)) => {
            crate::auth::service::start_session(auth, &email, password, &ip).await
        }
        _ => Err(AuthError::InvalidCredentials),
    };
    let (access_token, caller) = match started {
        Ok(started) => started,
        Err(AuthError::InvalidCredentials | AuthError::Invalid { .. }) => {
            return Ok(refused(StatusCode::UNAUTHORIZED, REFUSED));
        }
        Err(AuthError::Throttled {
            retry_after_secs,
            account,
        }) => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            let message = if account {
                format!(
                    "Too many failed attempts. Try again in {minutes} minutes, or unlock the \
                     account now with `currency-conversion user unlock --email …` (setting a \
                     new password unlocks it too)."
                )
            } else {
                format!("Too many failed attempts. Try again in {minutes} minutes.")
            };
            let mut res = refused(StatusCode::TOO_MANY_REQUESTS, &message);
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(retry_after_secs),
            );
            return Ok(res);
        }
        Err(e) => return Err(MonitorError::Internal(anyhow::Error::new(e))),
    };
    if caller.role != crate::auth::Role::Admin {
        // A partner's credentials are right but open nothing here: its token is never sent.
        tracing::info!(user_id = %caller.id, "partner refused at the monitor login");
        return Ok(refused(StatusCode::FORBIDDEN, REFUSED));
    }
    let cookie = sessions.session_cookie(
        &access_token,
        caller.expires_at - auth.clock.now().timestamp(),
    );
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .cookie(sessions.cleared_login_cookie())
        .insert_header((header::LOCATION, "/monitor"))
        .finish())
}

/// The body of every state-changing form.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn sent_csrf(form: &Option<web::Form<CsrfForm>>) -> Option<&str> {
    form.as_ref().map(|f| f.csrf.as_str())
}

#[tracing::instrument(name = "monitor.logout", skip_all, fields(user_id = %session.caller.id))]
async fn logout(
    sessions: web::Data<Sessions>,
    session: MonitorSession,
    form: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, MonitorError> {
    session.verify_csrf(sent_csrf(&form))?;
    crate::auth::service::logout(&sessions.auth, &session.caller, None)
        .await
        .map_err(|e| MonitorError::Internal(anyhow::Error::new(e)))?;
    Ok(HttpResponse::SeeOther()
        .cookie(sessions.cleared_cookie())
        .insert_header((header::LOCATION, LOGIN_PATH))
        .finish())
}

#[tracing::instrument(name = "monitor.overview", skip_all)]
async fn overview(
    monitor: web::Data<Monitor>,
    registry: web::Data<TaskRegistry>,
    session: MonitorSession,
) -> Result<HttpResponse, MonitorError> {
    let overview = data::overview(&monitor, &registry).await?;
    Ok(html(
        StatusCode::OK,
        views::overview_page(&session, &overview),
    ))
}

/// Query of the runs list; empty values (the "any" choice of a filter) mean no filter.
#[derive(Deserialize)]
pub struct RunsQuery {
    task: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[tracing::instrument(name = "monitor.runs", skip_all)]
async fn runs(
    monitor: web::Data<Monitor>,
    registry: web::Data<TaskRegistry>,
    session: MonitorSession,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, MonitorError> {
    let q = query.into_inner();
    let filter = data::RunFilter {
        task: non_empty(q.task),
        state: non_empty(q.state)
            .map(|s| {
                TaskState::try_from(s).map_err(|e| MonitorError::BadRequest(format!("state: {e}")))
            })
            .transpose()?,
        before: non_empty(q.before)
            .map(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| MonitorError::BadRequest("before: not a run id".into()))
            })
            .transpose()?,
    };
    let page = data::runs_page(&monitor, &registry, filter).await?;
    Ok(html(StatusCode::OK, views::runs_page(&session, &page)))
}

fn run_id(raw: &str) -> Result<Uuid, MonitorError> {
    raw.parse()
        .map_err(|_| MonitorError::NotFound(format!("no task run {raw}")))
}

#[tracing::instrument(name = "monitor.run", skip_all, fields(run_id = %id))]
async fn run(
    monitor: web::Data<Monitor>,
    session: MonitorSession,
    id: web::Path<String>,
) -> Result<HttpResponse, MonitorError> {
    let run = data::run(&monitor, run_id(&id)?).await?;
    Ok(html(
        StatusCode::OK,
        views::run_page(&session, &run, monitor.clock.now()),
    ))
}

#[tracing::instrument(name = "monitor.retry", skip_all, fields(run_id = %id))]
async fn retry(
    monitor: web::Data<Monitor>,
    session: MonitorSession,
    id: web::Path<String>,
    form: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, MonitorError> {
    session.verify_csrf(sent_csrf(&form))?;
    let run = crate::tasks::retry(&monitor.tasks, run_id(&id)?).await?;
    tracing::info!(run_id = %run.id, user_id = %session.caller.id, "run retried from the monitor");
    Ok(see_other(&format!("/monitor/runs/{}", run.id)))
}

#[tracing::instrument(name = "monitor.run_now", skip_all, fields(task = %name))]
async fn run_now(
    monitor: web::Data<Monitor>,
    registry: web::Data<TaskRegistry>,
    session: MonitorSession,
    name: web::Path<String>,
    form: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, MonitorError> {
    session.verify_csrf(sent_csrf(&form))?;
    let run =
        crate::tasks::enqueue(&monitor.tasks, &registry, &name, serde_json::json!({})).await?;
    tracing::info!(run_id = %run.id, user_id = %session.caller.id, "run enqueued from the monitor");
    Ok(see_other(&format!("/monitor/runs/{}", run.id)))
}

#[derive(Deserialize)]
pub struct RatesQuery {
    currency: Option<String>,
    days: Option<u32>,
}

#[tracing::instrument(name = "monitor.rates", skip_all)]
async fn rates(
    monitor: web::Data<Monitor>,
    session: MonitorSession,
    query: web::Query<RatesQuery>,
) -> Result<HttpResponse, MonitorError> {
    let q = query.into_inner();
    let currency = non_empty(q.currency)
        .map(|c| {
            CurrencyCode::parse(&c.to_ascii_uppercase())
                .map_err(|e| MonitorError::BadRequest(format!("currency: {e}")))
        })
        .transpose()?;
    let page = data::rates_page(&monitor, currency, q.days.unwrap_or(30)).await?;
    Ok(html(StatusCode::OK, views::rates_page(&session, &page)))
}

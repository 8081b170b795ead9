//! Admin API over task runs: list, inspect, run now, retry, stats, schedules. Thin handlers: the
//! work is in [`crate::tasks`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::registry::TaskRegistry;
use super::store::{self, TaskRun, TaskState};
use super::{TaskError, TaskStats, Tasks};
use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::extract::{OptionalJson, Query};
use crate::pagination::PageLimit;

/// Registers the admin task routes under the caller's scope (`/api/v1`). Needs the
/// [`TaskRegistry`] as `web::Data`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Every handler takes an `AdminUser`: partners get 403, anonymous callers 401. One resource
    // per path, so that a wrong method is a 405 with `Allow` rather than a 404.
    cfg.service(web::resource("/tasks/runs").route(web::get().to(list_runs)))
        .service(web::resource("/tasks/runs/{id}").route(web::get().to(get_run)))
        .service(web::resource("/tasks/runs/{id}/retry").route(web::post().to(retry_run)))
        .service(web::resource("/tasks/stats").route(web::get().to(stats)))
        .service(web::resource("/tasks/schedules").route(web::get().to(schedules)))
        .service(web::resource("/tasks/{name}/run").route(web::post().to(run_now)));
}

/// A task name in a filter: 1 to 64 letters, digits, `_`, `.`, `:` or `-`. Anything else (a NUL
/// byte, say) names no task and would only reach PostgreSQL to be refused there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNameFilter(String);

impl TaskNameFilter {
    pub fn parse(name: &str) -> Result<Self, &'static str> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !ok {
            return Err("must be 1 to 64 letters, digits, `_`, `.`, `:` or `-`");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TaskNameFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Filters and cursor of the run list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Only runs of this task.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub task: Option<TaskNameFilter>,
    /// Only runs in this state.
    pub state: Option<TaskState>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<PageLimit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// One page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub data: Vec<TaskRun>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Optional body of "run now".
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RunNowRequest {
    /// The job's arguments; `{}` when omitted.
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
}

/// A periodic task.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub task_name: String,
    /// Cron expression with seconds.
    pub cron: String,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// List task runs, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/runs", tag = "tasks", operation_id = "listTaskRuns",
    params(RunListQuery), security(("bearer" = ["admin"])),
    responses((status = 200, description = "One page of runs, newest first", body = RunPage)))]
#[tracing::instrument(skip(tasks))]
pub async fn list_runs(
    tasks: web::Data<Tasks>,
    _admin: AdminUser,
    query: Query<RunListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or_default().get();
    let mut data = store::list(
        &tasks.db,
        q.task.as_ref().map(TaskNameFilter::as_str),
        q.state,
        q.cursor,
        limit + 1,
    )
    .await
    .map_err(TaskError::from)?;
    let next_cursor = if data.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        data.pop();
        data.last().map(|r| r.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(RunPage { data, next_cursor }))
}

/// One task run.
#[utoipa::path(get, path = "/api/v1/tasks/runs/{id}", tag = "tasks", operation_id = "getTaskRun",
    params(("id" = Uuid, Path, description = "Run id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The run", body = TaskRun),
        (status = 404, description = "No such run", body = crate::error::Problem),
    ))]
#[tracing::instrument(skip(tasks))]
pub async fn get_run(
    tasks: web::Data<Tasks>,
    _admin: AdminUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = store::get(&tasks.db, id)
        .await
        .map_err(TaskError::from)?
        .ok_or(TaskError::RunNotFound(id))?;
    Ok(HttpResponse::Ok().json(run))
}

/// Run a task now.
#[utoipa::path(post, path = "/api/v1/tasks/{name}/run", tag = "tasks", operation_id = "runTask",
    params(("name" = String, Path, description = "Task name, e.g. `fetch_rates`")),
    request_body(content = RunNowRequest, description = "Optional: the job's arguments"),
    security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "Recorded and enqueued", body = TaskRun),
        (status = 404, description = "No such task", body = crate::error::Problem),
    ))]
#[tracing::instrument(skip(tasks, registry, body))]
pub async fn run_now(
    tasks: web::Data<Tasks>,
    _admin: AdminUser,
    registry: web::Data<TaskRegistry>,
    name: web::Path<String>,
    body: OptionalJson<RunNowRequest>,
) -> Result<HttpResponse, ApiError> {
    let args = body
        .0
        .and_then(|b| b.args)
        .unwrap_or_else(|| serde_json::json!({}));
    let run = super::enqueue(&tasks, &registry, &name, args).await?;
    Ok(HttpResponse::Accepted().json(run))
}

/// Retry a dead or failed run.
#[utoipa::path(post, path = "/api/v1/tasks/runs/{id}/retry", tag = "tasks", operation_id = "retryTaskRun",
    params(("id" = Uuid, Path, description = "Run id")), security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "Queued again with fresh attempts", body = TaskRun),
        (status = 404, description = "No such run", body = crate::error::Problem),
        (status = 409, description = "The run is not dead or failed", body = crate::error::Problem),
    ))]
#[tracing::instrument(skip(tasks))]
pub async fn retry_run(
    tasks: web::Data<Tasks>,
    _admin: AdminUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let run = super::retry(&tasks, id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(run))
}

/// Queue depth and run counts.
#[utoipa::path(get, path = "/api/v1/tasks/stats", tag = "tasks", operation_id = "getTaskStats",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Queue depth and run counts", body = TaskStats)))]
#[tracing::instrument(skip(tasks))]
pub async fn stats(tasks: web::Data<Tasks>, _admin: AdminUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(super::stats(&tasks).await?))
}

/// Periodic tasks with their next fire time.
#[utoipa::path(get, path = "/api/v1/tasks/schedules", tag = "tasks", operation_id = "listTaskSchedules",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Periodic tasks with their next fire time", body = Vec<ScheduleView>)))]
#[tracing::instrument(skip(tasks, registry))]
pub async fn schedules(
    tasks: web::Data<Tasks>,
    _admin: AdminUser,
    registry: web::Data<TaskRegistry>,
) -> Result<HttpResponse, ApiError> {
    let now = tasks.clock.now();
    let views: Vec<ScheduleView> = registry
        .schedules()
        .map(|s| ScheduleView {
            task_name: s.task_name.clone(),
            cron: s.expression.clone(),
            next_fire_at: s.next_after(now),
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

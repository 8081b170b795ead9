//! Liveness, readiness and metrics endpoints: for load balancers, orchestrators and Prometheus.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::metrics::{Metrics, PoolGauges};
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` when every dependency answered.
    pub status: &'static str,
    /// `up` or `down` per dependency.
    pub checks: Checks,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    pub postgres: &'static str,
    pub redis: &'static str,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = HealthStatus)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// PostgreSQL and Redis both answer within a short timeout.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "A dependency is down; the detail names it", body = crate::error::Problem),
    ))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pg = async {
        tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(&state.db),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())
    };
    let redis = async {
        tokio::time::timeout(CHECK_TIMEOUT, state.redis.ping())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("{e:#}"))
    };
    let (pg, redis) = tokio::join!(pg, redis);
    let mut down = Vec::new();
    if let Err(e) = &pg {
        tracing::warn!(error = %e, "readiness: PostgreSQL is down");
        down.push("postgres");
    }
    if let Err(e) = &redis {
        tracing::warn!(error = %e, "readiness: Redis is down");
        down.push("redis");
    }
    if !down.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "not ready: {} down",
            down.join(" and ")
        )));
    }
    Ok(HttpResponse::Ok().json(HealthStatus {
        status: "ok",
        checks: Checks {
            postgres: "up",
            redis: "up",
        },
    }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    let redis = state.redis.status();
    let gauges = PoolGauges {
        pg_size: state.db.size(),
        pg_idle: state.db.num_idle(),
        pg_max: state.settings.database.max_connections,
        redis_size: redis.size,
        redis_available: redis.available,
        redis_max: redis.max_size,
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(&gauges))
}

//! Liveness, readiness and metrics endpoints: for load balancers, orchestrators and Prometheus.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::metrics::{Metrics, PoolGauges};
use crate::redis_client::Redis;
use crate::replica::{ReadPool, ReplicaState};
use crate::settings::Settings;

const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// What readiness and `/metrics` look at: the two pools, the metrics token and the pool size
/// the gauges report against. Handlers get it as `web::Data<Health>`.
#[derive(Clone)]
pub struct Health {
    /// PostgreSQL, checked by readiness and measured by the pool gauges.
    pub db: PgPool,
    /// The read replica, reported by readiness (never failing it) and counted in `/metrics`.
    pub reads: ReadPool,
    /// Redis, likewise.
    pub redis: Redis,
    /// `metrics.bearer_token`: when set, `/metrics` answers only requests carrying it.
    pub metrics_token: Option<SecretString>,
    /// `database.max_connections`, the PostgreSQL pool's ceiling.
    pub pg_max_connections: u32,
}

impl Health {
    /// The health checks of a process over its pools, with `metrics.bearer_token` and
    /// `database.max_connections` from `settings`.
    pub fn new(reads: ReadPool, redis: Redis, settings: &Settings) -> Self {
        Self {
            db: reads.primary().clone(),
            reads,
            redis,
            metrics_token: settings.metrics.bearer_token.clone(),
            pg_max_connections: settings.database.max_connections,
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

/// `/metrics`, registered on the API listener or on a listener of its own as
/// `settings.metrics.expose` says (`startup.rs`).
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// Liveness: the process answers; says nothing about its dependencies.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` when every dependency answered; `degraded` when the instance serves requests without
    /// one it can do without (Redis: rate cache, login throttle and task queue).
    pub status: &'static str,
    /// The state of each dependency.
    pub checks: Checks,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    /// `up` (a `503` instead when it is down).
    #[schema(example = "up")]
    pub postgres: &'static str,
    /// `up` or `down`.
    #[schema(example = "up")]
    pub redis: &'static str,
    /// The read replica (`database.replica_url`): `none` when there is none, `up`, `lagging`
    /// (further behind than `database.replica_max_lag_secs`) or `down`. Never fails readiness:
    /// while it is lagging or down, its reads go to the primary.
    #[schema(example = "none")]
    pub replica: &'static str,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "getLiveness",
    responses((status = 200, description = "The process is up and serving HTTP", body = Liveness)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Whether this instance can serve requests. Readiness decides whether an orchestrator or load
/// balancer sends traffic here, so it fails only for what stops the API: PostgreSQL, the record
/// of everything. Without Redis the API still serves (rates from PostgreSQL, the queue refilled
/// by the reconciler later), so that is `200` with `status: degraded`: pulling every instance
/// out of rotation because the shared Redis is down would turn a degradation into an outage.
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "getReadiness",
    responses(
        (status = 200, description = "Ready; `status` is `degraded` and `checks.redis` is `down` while Redis is away", body = HealthStatus),
        (status = 503, description = "PostgreSQL is down: this instance cannot serve", body = crate::error::Problem),
    ))]
pub async fn ready(health: web::Data<Health>) -> Result<HttpResponse, ApiError> {
    let pg = async {
        tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(&health.db),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())
    };
    let redis = async {
        tokio::time::timeout(CHECK_TIMEOUT, health.redis.ping())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("{e:#}"))
    };
    let (pg, redis, replica) = tokio::join!(pg, redis, health.reads.state());
    if let Err(e) = &redis {
        tracing::warn!(error = %e, "readiness: Redis is down; serving degraded");
    }
    if let Err(e) = &pg {
        tracing::warn!(error = %e, "readiness: PostgreSQL is down");
        return Err(ApiError::Unavailable(if redis.is_ok() {
            "not ready: postgres down".to_owned()
        } else {
            "not ready: postgres down (redis down too)".to_owned()
        }));
    }
    Ok(HttpResponse::Ok().json(HealthStatus {
        status: if redis.is_ok() { "ok" } else { "degraded" },
        checks: Checks {
            postgres: "up",
            redis: if redis.is_ok() { "up" } else { "down" },
            replica: replica.as_str(),
        },
    }))
}

/// Prometheus text format. With `metrics.bearer_token` set, only for that bearer token.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "getMetrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 401, description = "`metrics.bearer_token` is set and the request does not carry it", body = crate::error::Problem),
    ))]
pub async fn metrics(
    req: HttpRequest,
    health: web::Data<Health>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &health.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Digests of equal length: the comparison's timing says nothing about the token.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.expose_secret().as_bytes()) {
            return Err(ApiError::Unauthorized(
                "/metrics needs the metrics bearer token".into(),
            ));
        }
    }
    let redis = health.redis.status();
    let gauges = PoolGauges {
        pg_size: health.db.size(),
        pg_idle: health.db.num_idle(),
        pg_max: health.pg_max_connections,
        redis_size: redis.size,
        redis_available: redis.available,
        redis_max: redis.max_size,
        replica_up: match health.reads.state().await {
            ReplicaState::None => None,
            state => Some(state == ReplicaState::Up),
        },
        replica_fallbacks: health.reads.fallbacks(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(&gauges)))
}

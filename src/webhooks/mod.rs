//! Webhooks (Standard Webhooks): a partner registers endpoints for event types and receives
//! each event signed (`webhook-id`, `webhook-timestamp`, `webhook-signature`), at least once,
//! with retries over about a day. Owns `webhook_endpoints`, `webhook_events` and
//! `webhook_deliveries`. Registering an endpoint is idempotent with an `Idempotency-Key`
//! ([`crate::idempotency`], scope `webhook_endpoint`).
//!
//! Other capabilities never send anything: inside the transaction of their change they call
//! [`outbox::record`] with the resource as the API shows it, and the `deliver_webhooks` job
//! ([`delivery`]) sends it later. This module knows nothing about conversions or quotes: an
//! event's data arrives already serialised.

pub mod delivery;
pub mod domain;
pub mod guard;
pub mod outbox;
pub mod routes;
pub mod service;
pub mod signing;
pub mod store;

pub use delivery::DeliverWebhooks;
pub use domain::EventType;

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::gcra::LocalLimiter;
use crate::idempotency::Keys;
use crate::redis_client::{OutageLog, Redis};
use crate::settings::WebhookSettings;

/// What the webhook use cases and the `deliver_webhooks` job run with: the pool, Redis (the
/// test-ping limit), the clock, `webhooks.*` and one HTTP client whose resolver is the SSRF
/// guard. Cheap to clone; routes get it as `web::Data<Webhooks>`, the job as its context.
#[derive(Clone)]
pub struct Webhooks {
    /// PostgreSQL, where endpoints, events and deliveries are.
    pub db: PgPool,
    /// Now, for creation times, rotations and delivery schedules.
    pub clock: Clock,
    /// `webhooks.*`.
    pub settings: Arc<WebhookSettings>,
    /// How long an `Idempotency-Key` is remembered.
    pub keys: Keys,
    /// Redis, where every instance counts the test pings of an endpoint
    /// (`webhooks.test_pings_per_minute`).
    redis: Redis,
    /// This process's count of test pings while Redis does not answer (never unlimited).
    ping_fallback: Arc<LocalLimiter>,
    /// Whether the ping limit is counting in process now, so the outage is logged once.
    ping_outage: Arc<OutageLog>,
    /// The delivering client ([`delivery::http_client`]).
    http: reqwest::Client,
}

impl Webhooks {
    /// The webhooks of a process, with its delivering HTTP client built from `settings`,
    /// remembering idempotency keys as long as `keys` says.
    pub fn new(
        db: PgPool,
        redis: Redis,
        clock: Clock,
        settings: &WebhookSettings,
        keys: Keys,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            clock,
            keys,
            redis,
            ping_fallback: Arc::default(),
            ping_outage: Arc::default(),
            http: delivery::http_client(settings)?,
            settings: Arc::new(settings.clone()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The URL points at an address webhooks may not call (SSRF guard).
    #[error("url: {0}")]
    ForbiddenTarget(String),
    #[error("a partner may have at most {0} webhook endpoints; delete one first")]
    TooManyEndpoints(u32),
    #[error("no such webhook endpoint")]
    EndpointNotFound,
    #[error("no such delivery")]
    DeliveryNotFound,
    /// The endpoint's test pings per minute are used up.
    #[error(
        "an endpoint may be pinged {limit} times a minute; retry after {retry_after_secs} seconds"
    )]
    TooManyPings { limit: u32, retry_after_secs: u64 },
    #[error(transparent)]
    IdempotencyKeyReused(#[from] crate::idempotency::KeyReused),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WebhookError {
    fn from(e: sqlx::Error) -> Self {
        WebhookError::Unexpected(e.into())
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid { field, message } => ApiError::validation(field, message),
            e @ WebhookError::ForbiddenTarget(_) => ApiError::Unprocessable {
                slug: "webhook-target-forbidden",
                detail: e.to_string(),
            },
            e @ WebhookError::TooManyEndpoints(_) => ApiError::ConflictAs {
                slug: "webhook-endpoint-limit",
                detail: e.to_string(),
            },
            e @ (WebhookError::EndpointNotFound | WebhookError::DeliveryNotFound) => {
                ApiError::NotFound(e.to_string())
            }
            e @ WebhookError::TooManyPings {
                retry_after_secs, ..
            } => ApiError::TooManyRequestsAs {
                slug: "webhook-test-limit",
                detail: e.to_string(),
                retry_after_secs,
            },
            WebhookError::IdempotencyKeyReused(e) => e.into(),
            WebhookError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

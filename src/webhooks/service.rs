//! Webhook use cases: a partner registers, lists, deletes its endpoints, rotates a secret,
//! pings an endpoint, reads its deliveries and retries one.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{DeliveryState, EndpointUrl, EventSubscription, EventType, WebhookUrl};
use super::guard;
use super::signing;
use super::store::{self, DeliveryRow, EndpointRow};
use super::{WebhookError, Webhooks};
use crate::auth::PartnerId;
use crate::idempotency::{Claim, IdempotencyKey, RequestHash, Scope};
use crate::pagination::{Cursor, Page};
use crate::settings::WebhookSettings;

/// An endpoint as the API shows it (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: Uuid,
    /// Where events are POSTed.
    #[schema(example = "https://partner.example/webhooks")]
    pub url: String,
    /// The event types delivered here.
    #[schema(value_type = Vec<String>, example = json!(["conversion.created", "conversion.finalized"]))]
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
    /// After a rotation: until when the previous secret still signs (beside the new one).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<EndpointRow> for EndpointView {
    fn from(r: EndpointRow) -> Self {
        Self {
            id: r.id,
            url: r.url,
            events: r.events,
            created_at: r.created_at,
            previous_secret_expires_at: r.previous_secret_expires_at,
        }
    }
}

/// Where an endpoint's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Deliveries go out (at most `webhooks.max_in_flight_per_endpoint` at once).
    Closed,
    /// `webhooks.breaker_failures` attempts in a row failed: deliveries wait until
    /// `paused_until` (postponed, not failed: no attempt is counted meanwhile).
    Open,
    /// The pause is over and the last attempts failed: one delivery at a time is tried; a 2xx
    /// closes the breaker, a failure opens it again.
    HalfOpen,
}

/// An endpoint's circuit breaker. It is kept on the endpoint in PostgreSQL, so every instance
/// sees the same.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Breaker {
    pub state: BreakerState,
    /// Attempts that failed in a row (a 2xx resets it).
    pub consecutive_failures: i32,
    /// While open: until when the endpoint's deliveries wait.
    pub paused_until: Option<DateTime<Utc>>,
}

impl Breaker {
    /// The breaker of an endpoint with `consecutive_failures` and `paused_until`, at `now`, for a
    /// breaker that opens at `threshold` failures.
    pub fn at(
        consecutive_failures: i32,
        paused_until: Option<DateTime<Utc>>,
        threshold: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let tripped = i64::from(consecutive_failures) >= i64::from(threshold.max(1));
        let state = match paused_until {
            Some(until) if until > now => BreakerState::Open,
            _ if tripped => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        };
        Self {
            state,
            consecutive_failures,
            paused_until: paused_until.filter(|until| *until > now),
        }
    }
}

/// An endpoint as listed: with its circuit breaker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// Whether deliveries to it go out now or wait for it to recover.
    pub breaker: Breaker,
}

/// A new endpoint with its signing secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_` + base64): verify `webhook-signature` with it. Shown only
    /// in this response; keep it like a password.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// A rotated secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub id: Uuid,
    /// The new signing secret, shown only in this response.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    /// Until then, deliveries carry a signature by the previous secret too.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event, sent as the `webhook-id` header on every attempt.
    pub event_id: Uuid,
    #[schema(value_type = String, example = "conversion.created")]
    pub event_type: EventType,
    pub state: DeliveryState,
    /// Attempts made on the current schedule.
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer; null when there was none (refused, unreachable,
    /// timed out).
    pub last_status_code: Option<i32>,
    /// How long the last attempt took, in milliseconds.
    pub last_latency_ms: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            state: r.state,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempt_at: r.last_attempt_at,
            last_status_code: r.last_status_code,
            last_latency_ms: r.last_latency_ms,
            last_error: r.last_error,
            delivered_at: r.delivered_at,
            created_at: r.created_at,
        }
    }
}

/// Checks an endpoint URL (its form was checked where the request was read): plain http only
/// where `webhooks.allow_http` says so, and unless `webhooks.allow_private_targets`, every address
/// it resolves to now. Delivery checks the addresses again on each connection.
pub async fn check_url(
    settings: &WebhookSettings,
    url: &WebhookUrl,
) -> Result<EndpointUrl, WebhookError> {
    let url = EndpointUrl::allowing(url.clone(), settings.allow_http).map_err(|message| {
        WebhookError::Invalid {
            field: "url",
            message,
        }
    })?;
    if settings.allow_private_targets {
        return Ok(url);
    }
    if let Some(ip) = url.ip_literal() {
        if let Some(reason) = guard::forbidden_reason(ip) {
            tracing::info!(%ip, reason, "webhook endpoint refused");
            return Err(WebhookError::ForbiddenTarget(format!(
                "{} is {}",
                url.host(),
                guard::NOT_ALLOWED
            )));
        }
        return Ok(url);
    }
    // A name that does not resolve (yet) is accepted: its addresses are checked when it is
    // called.
    if let Ok(addrs) = guard::resolve(url.host()).await {
        guard::check_addresses(url.host(), &addrs).map_err(|refused| {
            tracing::info!(host = refused.host, ip = %refused.ip, reason = refused.reason, "webhook endpoint refused");
            WebhookError::ForbiddenTarget(refused.to_string())
        })?;
    }
    Ok(url)
}

/// Registers an endpoint. With an `Idempotency-Key`, the same key and request (the URL as
/// parsed, the set of event types) return the original endpoint as it is now, with its current
/// secret (`created = false`), or 404 when it was deleted since; the same key with another
/// request fails.
#[tracing::instrument(skip(webhooks, events, idempotency_key), fields(partner_id = %partner))]
pub async fn create_endpoint(
    webhooks: &Webhooks,
    partner: PartnerId,
    url: &WebhookUrl,
    events: &EventSubscription,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(CreatedEndpoint, bool), WebhookError> {
    let url = check_url(&webhooks.settings, url).await?;
    let names: Vec<String> = events
        .events()
        .iter()
        .map(|e| e.as_str().to_owned())
        .collect();
    let secret = signing::new_secret();
    let id = Uuid::now_v7();
    // PostgreSQL keeps microseconds: answer with what a later read returns.
    let now = webhooks.clock.now().trunc_subsecs(6);
    let max = webhooks.settings.max_endpoints_per_partner;
    let mut tx = webhooks.db.begin().await?;
    if let Some(key) = idempotency_key {
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let hash = sorted
            .iter()
            .fold(RequestHash::new().text(url.as_str()), |h, e| h.text(e))
            .finish();
        let claim = Claim {
            scope: Scope::WebhookEndpoint,
            partner_id: partner.as_uuid(),
            key,
            request_hash: &hash,
            resource_id: id,
        };
        if let Some(original) = webhooks.keys.claim(&mut tx, claim, now).await?.replay()? {
            tx.rollback().await?;
            let (endpoint, secret) =
                store::find_endpoint_with_secret(&webhooks.db, original, partner)
                    .await?
                    .ok_or(WebhookError::EndpointNotFound)?;
            let endpoint = EndpointView::from(endpoint);
            return Ok((CreatedEndpoint { endpoint, secret }, false));
        }
    }
    let inserted = store::insert_endpoint(
        &mut tx,
        &store::NewEndpoint {
            id,
            partner_id: partner.as_uuid(),
            url: url.as_str(),
            events: &names,
            secret: &secret,
            created_at: now,
        },
        i64::from(max),
    )
    .await?;
    if !inserted {
        return Err(WebhookError::TooManyEndpoints(max));
    }
    tx.commit().await?;
    tracing::info!(endpoint_id = %id, "webhook endpoint registered");
    let endpoint = EndpointView {
        id,
        url: url.as_str().to_owned(),
        events: events.events().to_vec(),
        created_at: now,
        previous_secret_expires_at: None,
    };
    Ok((CreatedEndpoint { endpoint, secret }, true))
}

/// The partner's live endpoints with their breakers, oldest first.
pub async fn list_endpoints(
    webhooks: &Webhooks,
    partner: PartnerId,
) -> Result<Vec<ListedEndpoint>, WebhookError> {
    let now = webhooks.clock.now();
    let threshold = webhooks.settings.breaker_failures;
    Ok(store::list_endpoints(&webhooks.db, partner)
        .await?
        .into_iter()
        .map(|r| ListedEndpoint {
            breaker: Breaker::at(r.consecutive_failures, r.paused_until, threshold, now),
            endpoint: EndpointView {
                id: r.id,
                url: r.url,
                events: r.events,
                created_at: r.created_at,
                previous_secret_expires_at: r.previous_secret_expires_at,
            },
        })
        .collect())
}

#[tracing::instrument(skip(webhooks), fields(partner_id = %partner))]
pub async fn delete_endpoint(
    webhooks: &Webhooks,
    partner: PartnerId,
    id: Uuid,
) -> Result<(), WebhookError> {
    if !store::delete_endpoint(&webhooks.db, id, partner, webhooks.clock.now()).await? {
        return Err(WebhookError::EndpointNotFound);
    }
    tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
    Ok(())
}

#[tracing::instrument(skip(webhooks), fields(partner_id = %partner))]
pub async fn rotate_secret(
    webhooks: &Webhooks,
    partner: PartnerId,
    id: Uuid,
) -> Result<RotatedSecret, WebhookError> {
    let secret = signing::new_secret();
    let overlap = crate::settings::secs(webhooks.settings.secret_overlap_secs);
    let until = webhooks.clock.now().trunc_subsecs(6) + chrono::TimeDelta::seconds(overlap);
    store::rotate_secret(&webhooks.db, id, partner, &secret, until)
        .await?
        .ok_or(WebhookError::EndpointNotFound)?;
    tracing::info!(endpoint_id = %id, "webhook secret rotated");
    Ok(RotatedSecret {
        id,
        secret,
        previous_secret_expires_at: until,
    })
}

/// The `data` of a ping.
#[derive(Serialize)]
struct Ping {
    endpoint_id: Uuid,
}

/// Queues a `ping` event to one endpoint, within its `webhooks.test_pings_per_minute`;
/// returns its delivery.
#[tracing::instrument(skip(webhooks), fields(partner_id = %partner))]
pub async fn ping(
    webhooks: &Webhooks,
    partner: PartnerId,
    id: Uuid,
) -> Result<DeliveryView, WebhookError> {
    // The endpoint first: another partner's endpoint is a 404 whatever its pings.
    let endpoint = store::find_endpoint(&webhooks.db, id, partner)
        .await?
        .ok_or(WebhookError::EndpointNotFound)?;
    count_ping(webhooks, id).await?;
    // PostgreSQL keeps microseconds: answer with what a later read returns.
    let now = webhooks.clock.now().trunc_subsecs(6);
    let event_id = Uuid::now_v7();
    let payload = super::outbox::body(EventType::Ping, now, &Ping { endpoint_id: id })
        .map_err(anyhow::Error::from)?;
    let delivery = store::insert_ping(&webhooks.db, &endpoint, event_id, &payload, now).await?;
    Ok(DeliveryView {
        id: delivery,
        event_id,
        event_type: EventType::Ping,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        last_attempt_at: None,
        last_status_code: None,
        last_latency_ms: None,
        last_error: None,
        delivered_at: None,
        created_at: now,
    })
}

/// Counts one test ping of endpoint `id` against `webhooks.test_pings_per_minute`, or refuses
/// it. A ping makes a request to a URL the partner chose, so it is limited per endpoint (beside
/// the partner's request limit): GCRA in Redis, shared by every instance and atomic, so parallel
/// pings cannot slip past; while Redis does not answer, each instance counts on its own.
async fn count_ping(webhooks: &Webhooks, id: Uuid) -> Result<(), WebhookError> {
    let limit = webhooks.settings.test_pings_per_minute;
    let now = webhooks.clock.now().timestamp_micros();
    let key = webhooks.redis.key(&format!("webhooks:pings:{id}"));
    let decision = match crate::gcra::check_redis(&webhooks.redis, &key, limit, now).await {
        Ok(decision) => {
            if webhooks.ping_outage.succeeded() {
                tracing::info!("webhook test pings: Redis answers again; counting there");
            }
            decision
        }
        Err(e) => {
            if webhooks.ping_outage.failed() {
                tracing::warn!(error = %e,
                    "webhook test pings: Redis unavailable; each instance counts on its own until it answers");
            }
            webhooks.ping_fallback.check(id, limit, now)
        }
    };
    if decision.allowed {
        return Ok(());
    }
    tracing::info!(endpoint_id = %id, limit, "webhook test ping limit reached");
    Err(WebhookError::TooManyPings {
        limit,
        retry_after_secs: decision.retry_after_secs,
    })
}

/// One page of an endpoint's deliveries, newest first.
pub async fn deliveries(
    webhooks: &Webhooks,
    partner: PartnerId,
    endpoint: Uuid,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Page<DeliveryView>, WebhookError> {
    store::find_endpoint(&webhooks.db, endpoint, partner)
        .await?
        .ok_or(WebhookError::EndpointNotFound)?;
    let rows = store::list_deliveries(&webhooks.db, endpoint, limit, after).await?;
    let views: Vec<DeliveryView> = rows.into_iter().map(Into::into).collect();
    Ok(Page::from_rows(views, limit, |d| Cursor {
        at: d.created_at,
        id: d.id,
    }))
}

/// Makes a delivery due now (a dead or delivered one starts a new schedule).
#[tracing::instrument(skip(webhooks), fields(partner_id = %partner))]
pub async fn retry(
    webhooks: &Webhooks,
    partner: PartnerId,
    endpoint: Uuid,
    delivery: Uuid,
) -> Result<DeliveryView, WebhookError> {
    let row = store::retry_delivery(
        &webhooks.db,
        partner,
        endpoint,
        delivery,
        webhooks.clock.now(),
    )
    .await?
    .ok_or(WebhookError::DeliveryNotFound)?;
    tracing::info!(delivery_id = %delivery, "webhook delivery retried by the partner");
    Ok(row.into())
}

/// Deliveries failing (pending after a failed attempt) and dead, across partners, for the
/// monitor.
pub async fn delivery_counts(db: &sqlx::PgPool) -> Result<store::DeliveryCounts, sqlx::Error> {
    store::delivery_counts(db).await
}

//! SQL for webhook endpoints, events and deliveries.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{DeliveryState, EventType};
use crate::auth::PartnerId;
use crate::pagination::Cursor;

#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// An endpoint with its breaker, as listed.
#[derive(Debug, Clone)]
pub struct ListedEndpointRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub consecutive_failures: i32,
    pub paused_until: Option<DateTime<Utc>>,
}

pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub url: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub created_at: DateTime<Utc>,
}

/// Inserts an endpoint unless the partner already has `max` live ones; `false` when it has.
/// The count and the insert are one statement, under a lock on the partner's row (held until
/// the caller's transaction ends) so that two concurrent registrations cannot both pass the
/// limit.
pub async fn insert_endpoint(
    conn: &mut PgConnection,
    e: &NewEndpoint<'_>,
    max: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query!(
        "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        e.partner_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let done = sqlx::query!(
        "INSERT INTO webhook_endpoints (id, partner_id, url, events, secret, created_at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE (SELECT count(*) FROM webhook_endpoints
                WHERE partner_id = $2 AND deleted_at IS NULL) < $7",
        e.id,
        e.partner_id,
        e.url,
        e.events,
        e.secret,
        e.created_at,
        max,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One of the partner's live endpoints with its current signing secret (the answer to a
/// replayed registration).
pub async fn find_endpoint_with_secret(
    db: &PgPool,
    id: Uuid,
    partner: PartnerId,
) -> Result<Option<(EndpointRow, String)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, partner_id, url, events AS "events: Vec<EventType>", created_at,
                previous_secret_expires_at, secret
         FROM webhook_endpoints WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL"#,
        id,
        partner.as_uuid(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let endpoint = EndpointRow {
            id: r.id,
            partner_id: r.partner_id,
            url: r.url,
            events: r.events,
            created_at: r.created_at,
            previous_secret_expires_at: r.previous_secret_expires_at,
        };
        (endpoint, r.secret)
    }))
}

/// A partner's live endpoints with their breakers, oldest first.
pub async fn list_endpoints(
    db: &PgPool,
    partner: PartnerId,
) -> Result<Vec<ListedEndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        ListedEndpointRow,
        r#"SELECT id, partner_id, url, events AS "events: Vec<EventType>", created_at,
                previous_secret_expires_at, consecutive_failures, paused_until
         FROM webhook_endpoints WHERE partner_id = $1 AND deleted_at IS NULL
         ORDER BY created_at, id"#,
        partner.as_uuid(),
    )
    .fetch_all(db)
    .await
}

/// One of the partner's live endpoints.
pub async fn find_endpoint(
    db: &PgPool,
    id: Uuid,
    partner: PartnerId,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        r#"SELECT id, partner_id, url, events AS "events: Vec<EventType>", created_at,
                previous_secret_expires_at
         FROM webhook_endpoints WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL"#,
        id,
        partner.as_uuid(),
    )
    .fetch_optional(db)
    .await
}

/// Deletes a partner's endpoint; its pending deliveries die with a reason. `false` when there
/// was no such live endpoint.
pub async fn delete_endpoint(
    db: &PgPool,
    id: Uuid,
    partner: PartnerId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "UPDATE webhook_endpoints SET deleted_at = $3
         WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL",
        id,
        partner.as_uuid(),
        now,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE webhook_deliveries
         SET state = 'dead', next_attempt_at = NULL, leased_until = NULL,
             last_error = 'the endpoint was deleted'
         WHERE endpoint_id = $1 AND state = 'pending'",
        id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Replaces the secret; the current one becomes the previous one until `previous_expires_at`.
pub async fn rotate_secret(
    db: &PgPool,
    id: Uuid,
    partner: PartnerId,
    secret: &str,
    previous_expires_at: DateTime<Utc>,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        r#"UPDATE webhook_endpoints
           SET previous_secret = secret, previous_secret_expires_at = $4, secret = $3
           WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL
           RETURNING id, partner_id, url, events AS "events: Vec<EventType>", created_at,
                     previous_secret_expires_at"#,
        id,
        partner.as_uuid(),
        secret,
        previous_expires_at,
    )
    .fetch_optional(db)
    .await
}

/// Records a `ping` event for one endpoint with its delivery, due at `now`; returns the
/// delivery id.
pub async fn insert_ping(
    db: &PgPool,
    endpoint: &EndpointRow,
    event_id: Uuid,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let delivery = Uuid::now_v7();
    sqlx::query!(
        "WITH event AS (
             INSERT INTO webhook_events (id, partner_id, event_type, payload, created_at)
             VALUES ($1, $2, 'ping', $3, $4)
         )
         INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at)
         VALUES ($5, $1, $6, $4, $4)",
        event_id,
        endpoint.partner_id,
        payload,
        now,
        delivery,
        endpoint.id,
    )
    .execute(db)
    .await?;
    Ok(delivery)
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub endpoint_id: Uuid,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One page of an endpoint's deliveries, newest first (`limit + 1` rows).
pub async fn list_deliveries(
    db: &PgPool,
    endpoint: Uuid,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let (after_at, after_id) = (after.map(|c| c.at), after.map(|c| c.id));
    sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id, d.event_id, e.event_type AS "event_type: EventType", d.endpoint_id, d.state AS "state: DeliveryState", d.attempts,
                  d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_latency_ms,
                  d.last_error, d.delivered_at, d.created_at
           FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
           WHERE d.endpoint_id = $1
             AND (d.created_at, d.id) < (COALESCE($2, 'infinity'::timestamptz),
                                         COALESCE($3, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
           ORDER BY d.created_at DESC, d.id DESC
           LIMIT $4"#,
        endpoint,
        after_at,
        after_id,
        limit + 1,
    )
    .fetch_all(db)
    .await
}

/// Makes a delivery of the partner's live endpoint due now. A finished (delivered or dead)
/// delivery starts a new schedule; a pending one keeps its attempt count.
pub async fn retry_delivery(
    db: &PgPool,
    partner: PartnerId,
    endpoint: Uuid,
    delivery: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        r#"WITH retried AS (
               UPDATE webhook_deliveries d
               SET attempts = CASE WHEN d.state = 'pending' THEN d.attempts ELSE 0 END,
                   state = 'pending', next_attempt_at = $4
               FROM webhook_endpoints ep
               WHERE d.id = $1 AND d.endpoint_id = $2 AND ep.id = d.endpoint_id
                 AND ep.partner_id = $3 AND ep.deleted_at IS NULL
               RETURNING d.*
           )
           SELECT r.id, r.event_id, e.event_type AS "event_type: EventType", r.endpoint_id, r.state AS "state: DeliveryState", r.attempts,
                  r.next_attempt_at, r.last_attempt_at, r.last_status_code, r.last_latency_ms,
                  r.last_error, r.delivered_at, r.created_at
           FROM retried r JOIN webhook_events e ON e.id = r.event_id"#,
        delivery,
        endpoint,
        partner.as_uuid(),
        now,
    )
    .fetch_optional(db)
    .await
}

/// A delivery claimed for one attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    /// The attempt number this claim is for (1-based).
    pub attempts: i32,
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    pub payload: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// How many attempts the dispatcher may have in flight, counted across every instance: what
/// [`claim_due`] keeps within.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits {
    /// Most deliveries this claim takes (the dispatcher's free slots).
    pub max: i64,
    /// `webhooks.max_in_flight_per_endpoint`.
    pub per_endpoint: i64,
    /// `webhooks.max_in_flight_per_partner`.
    pub per_partner: i64,
    /// `webhooks.breaker_failures`: an endpoint with this many failures in a row gets one
    /// attempt at a time (the trial after a pause).
    pub breaker_failures: i32,
}

/// Arbitrary key of the transaction-level advisory lock that makes claims take turns, so two
/// dispatchers never both fill the same endpoint's last free place.
const CLAIM_LOCK: i64 = 0x7765_6268_6f6f_6b73; // "webhooks"

/// Claims due deliveries for one attempt each, fairly: at most `per_endpoint` in flight per
/// endpoint (one while it is on trial after its breaker opened) and `per_partner` per partner,
/// nothing for an endpoint whose breaker holds it paused, and across partners by turns: each
/// partner's k-th attempt in flight (counting those already in flight) goes before anyone's
/// (k+1)-th, so a partner with many slow deliveries waits behind its own, not others'.
/// A claim counts the attempt and pushes `next_attempt_at` and `leased_until` to `lease_until`:
/// another dispatcher (here or on another instance) skips the delivery, and one that dies
/// mid-attempt leaves it due again afterwards.
pub async fn claim_due(
    db: &PgPool,
    now: DateTime<Utc>,
    limits: ClaimLimits,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut tx = db.begin().await?;
    // Claims take turns (one short statement each): the places counted below stay free until
    // this transaction has taken them.
    sqlx::query!(
        r#"SELECT 1 AS "locked!" FROM pg_advisory_xact_lock($1)"#,
        CLAIM_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    let claimed = sqlx::query_as!(
        Claimed,
        r#"WITH in_flight AS (
               SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
               WHERE leased_until > $1::timestamptz
               GROUP BY endpoint_id
           ),
           partner_in_flight AS (
               SELECT ep.partner_id, sum(f.n) AS n
               FROM in_flight f JOIN webhook_endpoints ep ON ep.id = f.endpoint_id
               GROUP BY ep.partner_id
           ),
           room AS (
               SELECT ep.id, ep.partner_id,
                      CASE WHEN ep.consecutive_failures >= $5::int THEN 1 ELSE $3::bigint END
                          - coalesce(f.n, 0) AS places
               FROM webhook_endpoints ep LEFT JOIN in_flight f ON f.endpoint_id = ep.id
               WHERE ep.deleted_at IS NULL
                 AND (ep.paused_until IS NULL OR ep.paused_until <= $1)
           ),
           candidates AS (
               SELECT d.id, r.partner_id, d.next_attempt_at
               FROM room r
               CROSS JOIN LATERAL (
                   SELECT id, next_attempt_at FROM webhook_deliveries
                   WHERE endpoint_id = r.id AND state = 'pending' AND next_attempt_at <= $1
                   ORDER BY next_attempt_at, id
                   LIMIT r.places
               ) d
               WHERE r.places > 0
           ),
           turns AS (
               SELECT c.id, c.next_attempt_at,
                      coalesce(p.n, 0)
                          + row_number() OVER (PARTITION BY c.partner_id
                                               ORDER BY c.next_attempt_at, c.id) AS turn
               FROM candidates c LEFT JOIN partner_in_flight p ON p.partner_id = c.partner_id
           ),
           chosen AS (
               SELECT id FROM turns
               WHERE turn <= $4::bigint
               ORDER BY turn, next_attempt_at, id
               LIMIT $2::bigint
           )
           UPDATE webhook_deliveries d
           SET attempts = d.attempts + 1, next_attempt_at = $6::timestamptz, leased_until = $6,
               last_attempt_at = $1
           FROM chosen, webhook_events e, webhook_endpoints ep
           WHERE d.id = chosen.id AND e.id = d.event_id AND ep.id = d.endpoint_id
             AND d.state = 'pending' AND d.next_attempt_at <= $1
           RETURNING d.id, d.attempts, d.event_id, d.endpoint_id, e.payload, ep.url, ep.secret,
                     ep.previous_secret, ep.previous_secret_expires_at"#,
        now,
        limits.max,
        limits.per_endpoint,
        limits.per_partner,
        limits.breaker_failures,
        lease_until,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// What one attempt found.
pub struct Outcome<'a> {
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// `None` when delivered.
    pub error: Option<&'a str>,
    /// When failed: the next attempt, or `None` when this was the last (the delivery is dead).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The breaker of an endpoint after an outcome was recorded.
#[derive(Debug, Clone, Copy)]
pub struct BreakerAfter {
    pub consecutive_failures: i32,
    pub paused_until: Option<DateTime<Utc>>,
}

/// Records the outcome of attempt `attempt`, unless the delivery moved on meanwhile (retried by
/// hand, or its endpoint deleted), and moves the endpoint's breaker in the same statement: a
/// 2xx closes it, a failure counts, and the `breaker_failures`-th failure in a row (or any
/// failure after that: the trial after a pause) pauses the endpoint until `pause_until`.
/// Returns the breaker as it is now, `None` when the outcome came too late to count.
pub async fn record_outcome(
    db: &PgPool,
    id: Uuid,
    attempt: i32,
    now: DateTime<Utc>,
    o: &Outcome<'_>,
    breaker_failures: i32,
    pause_until: DateTime<Utc>,
) -> Result<Option<BreakerAfter>, sqlx::Error> {
    let breaker = sqlx::query_as!(
        BreakerAfter,
        "WITH recorded AS (
             UPDATE webhook_deliveries
             SET state = CASE WHEN $5::text IS NULL THEN 'delivered'
                              WHEN $6::timestamptz IS NULL THEN 'dead'
                              ELSE 'pending' END,
                 next_attempt_at = CASE WHEN $5::text IS NULL THEN NULL ELSE $6 END,
                 delivered_at = CASE WHEN $5::text IS NULL THEN $7 ELSE delivered_at END,
                 last_status_code = $3, last_latency_ms = $4, last_error = $5,
                 leased_until = NULL
             WHERE id = $1 AND attempts = $2 AND state = 'pending'
             RETURNING endpoint_id
         )
         UPDATE webhook_endpoints ep
         SET consecutive_failures = CASE WHEN $5::text IS NULL THEN 0
                                         ELSE ep.consecutive_failures + 1 END,
             paused_until = CASE WHEN $5::text IS NULL THEN NULL
                                 WHEN ep.consecutive_failures + 1 >= $8 THEN $9
                                 ELSE ep.paused_until END
         FROM recorded
         WHERE ep.id = recorded.endpoint_id
         RETURNING ep.consecutive_failures, ep.paused_until",
        id,
        attempt,
        o.status_code,
        o.latency_ms,
        o.error,
        o.next_attempt_at,
        now,
        breaker_failures,
        pause_until,
    )
    .fetch_optional(db)
    .await?;
    Ok(breaker)
}

/// Deliveries per state, for the monitor: pending that failed at least once, and dead.
pub struct DeliveryCounts {
    pub failing: i64,
    pub dead: i64,
}

pub async fn delivery_counts(db: &PgPool) -> Result<DeliveryCounts, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT
               (SELECT count(*) FROM webhook_deliveries
                WHERE state = 'pending' AND last_error IS NOT NULL) AS "failing!",
               (SELECT count(*) FROM webhook_deliveries WHERE state = 'dead') AS "dead!""#
    )
    .fetch_one(db)
    .await?;
    Ok(DeliveryCounts {
        failing: row.failing,
        dead: row.dead,
    })
}

/// Deletes at most `limit` events created before `before` none of whose deliveries is still
/// pending, with their deliveries (the foreign key cascades); returns how many events.
pub async fn delete_events_before(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM webhook_events WHERE id IN (
             SELECT e.id FROM webhook_events e
             WHERE e.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                               WHERE d.event_id = e.id AND d.state = 'pending')
             LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

//! The outbox: other capabilities call [`record`] inside the transaction that makes a change,
//! so the event exists exactly when the change does (a rolled-back conversion leaves no event).
//! One statement writes the events and their deliveries, and only for partners with a live
//! endpoint subscribed to the type: for everyone else it is an index probe that writes nothing.
//! Delivery happens later, outside that transaction ([`super::delivery`]). An event about the
//! service rather than one partner's resource (a currency's rates degraded) goes to every
//! partner subscribed to its type ([`broadcast`]).

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::PartnerId;

use super::domain::EventType;

/// The body every delivery carries: `{"type","timestamp","data"}`, `data` being the resource as
/// the API shows it at the moment of the event.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: EventType,
    timestamp: DateTime<Utc>,
    data: &'a T,
}

/// The body of an event, as sent (and signed).
pub fn body<T: Serialize>(
    event_type: EventType,
    at: DateTime<Utc>,
    data: &T,
) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        event_type,
        timestamp: at,
        data,
    })
}

/// Records one `event_type` event at `at` per `(partner, resource)` item, in the caller's
/// transaction, with a delivery to each of the partner's live endpoints subscribed to the type.
/// Returns the number of deliveries created.
pub async fn record<'a, T: Serialize + 'a>(
    conn: &mut PgConnection,
    event_type: EventType,
    at: DateTime<Utc>,
    items: impl IntoIterator<Item = (PartnerId, &'a T)>,
) -> anyhow::Result<u64> {
    // Stored timestamps keep microseconds: the body says what the resource's fields say.
    let at = at.trunc_subsecs(6);
    let mut partners = Vec::new();
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for (partner, data) in items {
        partners.push(partner.as_uuid());
        ids.push(Uuid::now_v7());
        bodies.push(body(event_type, at, data)?);
    }
    if partners.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "WITH subscribed AS (
             SELECT id, partner_id FROM webhook_endpoints
             WHERE partner_id = ANY($1) AND deleted_at IS NULL AND $4 = ANY(events)
         ), events AS (
             INSERT INTO webhook_events (id, partner_id, event_type, payload, created_at)
             SELECT e.id, e.partner_id, $4, e.payload, $5
             FROM UNNEST($2::uuid[], $1::uuid[], $3::text[]) AS e(id, partner_id, payload)
             WHERE e.partner_id IN (SELECT partner_id FROM subscribed)
             RETURNING id, partner_id
         )
         INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at)
         SELECT gen_random_uuid(), events.id, subscribed.id, $5, $5
         FROM events JOIN subscribed ON subscribed.partner_id = events.partner_id",
        &partners,
        &ids,
        &bodies,
        event_type.as_str(),
        at,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Records one `event_type` event at `at` per item of `data`, for every partner with a live
/// endpoint subscribed to the type, in the caller's transaction, with a delivery to each of
/// those endpoints. One statement, whatever the number of partners. Returns the number of
/// deliveries created.
pub async fn broadcast<'a, T: Serialize + 'a>(
    conn: &mut PgConnection,
    event_type: EventType,
    at: DateTime<Utc>,
    data: impl IntoIterator<Item = &'a T>,
) -> anyhow::Result<u64> {
    let at = at.trunc_subsecs(6);
    let bodies = data
        .into_iter()
        .map(|d| body(event_type, at, d))
        .collect::<serde_json::Result<Vec<String>>>()?;
    if bodies.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "WITH subscribed AS (
             SELECT id, partner_id FROM webhook_endpoints
             WHERE deleted_at IS NULL AND $2 = ANY(events)
         ), events AS (
             INSERT INTO webhook_events (id, partner_id, event_type, payload, created_at)
             SELECT gen_random_uuid(), p.partner_id, $2, b.payload, $3
             FROM (SELECT DISTINCT partner_id FROM subscribed) p
             CROSS JOIN UNNEST($1::text[]) AS b(payload)
             RETURNING id, partner_id
         )
         INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at)
         SELECT gen_random_uuid(), events.id, subscribed.id, $3, $3
         FROM events JOIN subscribed ON subscribed.partner_id = events.partner_id",
        &bodies,
        event_type.as_str(),
        at,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

//! Usage per partner and UTC day: requests by class (read, write) and status class, 429s among
//! them, and conversions with their volume per source currency.
//!
//! Every partner request the limiter sees is counted, refused ones included, in a buffer in this
//! process ([`UsageBuffer::record`]: a map increment under a mutex, no I/O on the request path);
//! [`run_flusher`] adds the buffer to `partner_usage_daily` every `usage.flush_interval_ms` in
//! one statement, and once more at shutdown. A flush that fails puts its counts back, so an
//! outage of PostgreSQL delays them rather than losing them. Rows older than
//! `usage.retention_days` are deleted by the flusher about once an hour. Conversions are not
//! counted here: they are `conversions`' record, read through its summary.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Access;
use crate::auth::PartnerId;
use crate::currency_code::CurrencyCode;
use crate::money;

/// Whether a request reads or writes, by its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestClass {
    Read,
    Write,
}

impl RequestClass {
    pub fn of(method: &actix_web::http::Method) -> Self {
        use actix_web::http::Method;
        if [Method::GET, Method::HEAD, Method::OPTIONS].contains(method) {
            RequestClass::Read
        } else {
            RequestClass::Write
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RequestClass::Read => "read",
            RequestClass::Write => "write",
        }
    }
}

/// One counter: a partner's requests of a class with a status class on a day.
type Key = (Uuid, NaiveDate, RequestClass, i16);

/// (requests, of which 429) per key, not yet flushed.
#[derive(Debug, Default)]
pub struct UsageBuffer {
    counts: Mutex<HashMap<Key, (i64, i64)>>,
}

impl UsageBuffer {
    /// Counts one answered request.
    pub fn record(&self, partner: Uuid, at: DateTime<Utc>, class: RequestClass, status: u16) {
        let key = (
            partner,
            at.date_naive(),
            class,
            i16::try_from(status / 100).unwrap_or(5).clamp(1, 5),
        );
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counts.entry(key).or_default();
        entry.0 += 1;
        if status == 429 {
            entry.1 += 1;
        }
    }

    fn take(&self) -> HashMap<Key, (i64, i64)> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts counts back after a failed flush.
    fn restore(&self, taken: HashMap<Key, (i64, i64)>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (key, (n, limited)) in taken {
            let entry = counts.entry(key).or_default();
            entry.0 += n;
            entry.1 += limited;
        }
    }
}

/// Adds what the buffer holds to `partner_usage_daily`; on failure the counts go back.
pub async fn flush(access: &Access) -> anyhow::Result<usize> {
    flush_on(access, &access.db).await
}

/// The last flush of a stopping instance, on a connection of its own. The pool's connections
/// belong to the runtime of the task that opened them, often an HTTP worker's; once the server
/// has stopped, those runtimes are gone and such a connection fails ("a Tokio context … is
/// being shut down"), which lost the last second's counts in 3 of 8 stops under load.
async fn final_flush(access: &Access) -> anyhow::Result<usize> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&access.db.connect_options()).await?;
    let written = flush_on(access, &mut conn).await;
    let _ = conn.close().await;
    written
}

async fn flush_on<'c, E: sqlx::PgExecutor<'c>>(access: &Access, db: E) -> anyhow::Result<usize> {
    let taken = access.usage.take();
    if taken.is_empty() {
        return Ok(0);
    }
    let n = taken.len();
    let mut partners = Vec::with_capacity(n);
    let mut days = Vec::with_capacity(n);
    let mut classes = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut requests = Vec::with_capacity(n);
    let mut limited = Vec::with_capacity(n);
    for (&(partner, day, class, status), &(count, too_many)) in &taken {
        partners.push(partner);
        days.push(day);
        classes.push(class.as_str().to_owned());
        statuses.push(status);
        requests.push(count);
        limited.push(too_many);
    }
    let result = sqlx::query!(
        "INSERT INTO partner_usage_daily
             (partner_id, day, class, status_class, requests, rate_limited)
         SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::int2[], $5::int8[], $6::int8[])
         ON CONFLICT (partner_id, day, class, status_class) DO UPDATE
         SET requests = partner_usage_daily.requests + EXCLUDED.requests,
             rate_limited = partner_usage_daily.rate_limited + EXCLUDED.rate_limited",
        &partners,
        &days,
        &classes,
        &statuses,
        &requests,
        &limited,
    )
    .execute(db)
    .await;
    match result {
        Ok(_) => Ok(n),
        Err(e) => {
            access.usage.restore(taken);
            Err(e.into())
        }
    }
}

/// Deletes usage rows older than `retention_days` days before `now`'s day.
pub async fn prune(db: &PgPool, now: DateTime<Utc>, retention_days: u32) -> anyhow::Result<u64> {
    let cutoff = now.date_naive() - chrono::Days::new(u64::from(retention_days));
    let done = sqlx::query!("DELETE FROM partner_usage_daily WHERE day < $1", cutoff)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// How often the flusher deletes expired rows.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Flushes the buffer every `usage.flush_interval_ms` until `shutdown`, then once more; prunes
/// expired rows about once an hour. Failures are logged once per outage; their counts wait in
/// the buffer for the next flush.
pub async fn run_flusher(access: Access, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        access.usage_settings.flush_interval_ms,
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<Instant> = None;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = shutdown.cancelled() => true,
        };
        if stopping {
            if let Err(e) = final_flush(&access).await {
                tracing::error!(error = %e, "usage: the last counts of this instance could not be written");
            }
            return;
        }
        match flush(&access).await {
            Ok(_) => {
                if access.usage_outage.succeeded() {
                    tracing::info!("usage: PostgreSQL answers again; buffered counts written");
                }
            }
            Err(e) => {
                if access.usage_outage.failed() {
                    tracing::warn!(error = %e, "usage: cannot write counts; keeping them in memory until PostgreSQL answers");
                }
            }
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match prune(
                &access.db,
                access.clock.now(),
                access.usage_settings.retention_days,
            )
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "usage: expired days deleted"),
                Err(e) => tracing::debug!(error = %e, "usage: pruning failed; retried later"),
            }
        }
    }
}

/// One row of `partner_usage_daily`.
#[derive(Debug)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub class: String,
    pub status_class: i16,
    pub requests: i64,
    pub rate_limited: i64,
}

/// A partner's counted usage from `from` to `to` (days, both included).
pub async fn usage_rows(
    db: &PgPool,
    partner: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    sqlx::query_as!(
        UsageRow,
        "SELECT day, class, status_class, requests, rate_limited FROM partner_usage_daily
         WHERE partner_id = $1 AND day BETWEEN $2 AND $3
         ORDER BY day, class, status_class",
        partner,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_day_class_and_status_class_and_429s_apart() {
        let buffer = UsageBuffer::default();
        let partner = Uuid::new_v4();
        let at = DateTime::parse_from_rfc3339("2026-12-06T23:59:59Z")
            .unwrap()
            .to_utc();
        buffer.record(partner, at, RequestClass::Read, 200);
        buffer.record(partner, at, RequestClass::Read, 204);
        buffer.record(partner, at, RequestClass::Read, 429);
        buffer.record(partner, at, RequestClass::Read, 404);
        buffer.record(partner, at, RequestClass::Write, 201);
        buffer.record(
            partner,
            at + chrono::Duration::seconds(1),
            RequestClass::Read,
            200,
        );
        let taken = buffer.take();
        let day = at.date_naive();
        assert_eq!(taken[&(partner, day, RequestClass::Read, 2)], (2, 0));
        assert_eq!(taken[&(partner, day, RequestClass::Read, 4)], (2, 1));
        assert_eq!(taken[&(partner, day, RequestClass::Write, 2)], (1, 0));
        let next = day.succ_opt().unwrap();
        assert_eq!(taken[&(partner, next, RequestClass::Read, 2)], (1, 0));
        assert!(buffer.take().is_empty());
        buffer.restore(taken);
        buffer.record(partner, at, RequestClass::Read, 200);
        assert_eq!(
            buffer.take()[&(partner, day, RequestClass::Read, 2)],
            (3, 0)
        );
    }
}

/// Requests of one class, by status class.
#[derive(Debug, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct StatusCounts {
    #[serde(rename = "2xx")]
    pub s2xx: i64,
    #[serde(rename = "3xx")]
    pub s3xx: i64,
    #[serde(rename = "4xx")]
    pub s4xx: i64,
    #[serde(rename = "5xx")]
    pub s5xx: i64,
}

impl StatusCounts {
    fn add(&mut self, status_class: i16, n: i64) {
        match status_class {
            2 => self.s2xx += n,
            3 => self.s3xx += n,
            4 => self.s4xx += n,
            // 1xx is never a final answer; anything else counts as a server error.
            _ => self.s5xx += n,
        }
    }
}

/// Requests by class: `read` (GET, HEAD, OPTIONS) and `write` (the other methods).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RequestCounts {
    pub read: StatusCounts,
    pub write: StatusCounts,
}

/// Conversions from one currency on a day (cancelled ones not counted).
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyVolume {
    /// The source currency.
    #[schema(value_type = String)]
    pub currency: CurrencyCode,
    pub conversions: i64,
    /// Sum of the amounts converted from it, in it.
    #[schema(value_type = String)]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub volume: BigDecimal,
}

/// One UTC day of a partner's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    pub day: NaiveDate,
    /// Every request answered, by class and status class (429s included, under `4xx`).
    pub requests: RequestCounts,
    /// All of them.
    pub total_requests: i64,
    /// Of them, answered 429 (the request limit, or another limit such as open rate locks).
    pub rate_limited: i64,
    /// Conversions and their volume per source currency.
    pub conversions: Vec<CurrencyVolume>,
}

/// A partner's usage, day by day (days with nothing to show are left out).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub partner_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<UsageDay>,
}

/// Longest range one report covers, in days.
pub const MAX_REPORT_DAYS: u64 = 366;

/// `partner`'s usage from `from` to `to` (UTC days, both included): the counted requests, and
/// the conversions as `conversions` summarises them.
pub async fn report(
    access: &Access,
    partner: PartnerId,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<UsageReport> {
    let mut days: BTreeMap<NaiveDate, UsageDay> = BTreeMap::new();
    let empty = |day| UsageDay {
        day,
        requests: RequestCounts::default(),
        total_requests: 0,
        rate_limited: 0,
        conversions: Vec::new(),
    };
    for row in usage_rows(&access.db, partner.as_uuid(), from, to).await? {
        let day = days.entry(row.day).or_insert_with(|| empty(row.day));
        let class = if row.class == "read" {
            &mut day.requests.read
        } else {
            &mut day.requests.write
        };
        class.add(row.status_class, row.requests);
        day.total_requests += row.requests;
        day.rate_limited += row.rate_limited;
    }
    let start = from.and_time(NaiveTime::MIN).and_utc();
    let end = (to + chrono::Days::new(1))
        .and_time(NaiveTime::MIN)
        .and_utc();
    let conversions = crate::conversions::store::history::summary(
        &access.db,
        Some(partner),
        false,
        Some(start),
        Some(end),
    )
    .await?;
    for row in conversions {
        let Some(day) = row.day else { continue };
        days.entry(day)
            .or_insert_with(|| empty(day))
            .conversions
            .push(CurrencyVolume {
                currency: row.from_currency,
                conversions: row.count,
                volume: money::round_to_minor_units(&row.total_amount, row.from_minor_units),
            });
    }
    Ok(UsageReport {
        partner_id: partner.as_uuid(),
        from,
        to,
        days: days.into_values().collect(),
    })
}

//! How each of `rates.sources` is doing, for admins: every fetch cycle records each source's
//! outcome (answered or not, how long it took, its breaker after the call) in
//! `rate_source_fetches`, so that the monitor of any instance shows what the instance that
//! fetched saw; and the exclusions of the last day are read from the consensus observations.
//! `prune_expired_data` deletes fetch records after `rates.source_fetch_retention_days`.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};

use super::client::BreakerState;
use crate::currencies::CurrencyCode;

/// One source's answer in one fetch cycle.
#[derive(Debug, Clone)]
pub struct SourceFetch {
    /// Its name in `rates.sources`.
    pub source: String,
    /// The error, or `None` when it answered with usable rates.
    pub error: Option<String>,
    /// How long the fetch took, retries included.
    pub latency_ms: i32,
    /// Its breaker after the fetch.
    pub breaker: &'static str,
}

/// A breaker's state as recorded: `closed`, `open` or `half-open`.
pub fn breaker_name(state: Option<BreakerState>) -> &'static str {
    match state {
        Some(BreakerState::Open { .. }) => "open",
        Some(BreakerState::HalfOpen { .. }) => "half-open",
        Some(BreakerState::Closed { .. }) | None => "closed",
    }
}

/// Records one cycle's outcomes (one statement).
pub async fn record(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    fetches: &[SourceFetch],
) -> anyhow::Result<()> {
    let sources: Vec<String> = fetches.iter().map(|f| f.source.clone()).collect();
    let errors: Vec<Option<String>> = fetches.iter().map(|f| f.error.clone()).collect();
    let latencies: Vec<i32> = fetches.iter().map(|f| f.latency_ms).collect();
    let breakers: Vec<String> = fetches.iter().map(|f| f.breaker.to_owned()).collect();
    sqlx::query!(
        "INSERT INTO rate_source_fetches (source, fetched_at, ok, latency_ms, breaker, error)
         SELECT s, $1, e IS NULL, l, b, e
         FROM unnest($2::text[], $3::text[], $4::int4[], $5::text[]) AS t(s, e, l, b)",
        at,
        &sources,
        &errors as &[Option<String>],
        &latencies,
        &breakers,
    )
    .execute(conn)
    .await
    .context("recording the rates sources' fetches")?;
    Ok(())
}

/// One source's health as the monitor shows it.
#[derive(Debug, Clone)]
pub struct SourceHealth {
    /// Its name.
    pub source: String,
    /// Its newest recorded fetch: when, whether it answered, how long it took, its breaker
    /// after it and its error.
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// Whether that fetch answered.
    pub last_ok: bool,
    /// How long that fetch took.
    pub last_latency_ms: Option<i32>,
    /// Its breaker after that fetch.
    pub breaker: Option<String>,
    /// That fetch's error.
    pub last_error: Option<String>,
    /// Its newest fetch that answered.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Per currency, the consensus outcomes of the last day that excluded it.
    pub exclusions: BTreeMap<CurrencyCode, i64>,
}

/// A source's value left out of a consensus.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// The fetch that first saw it.
    pub observed_at: DateTime<Utc>,
    /// The last fetch that saw it again.
    pub last_seen_at: DateTime<Utc>,
    /// The source.
    pub source: String,
    /// The currency.
    pub currency: CurrencyCode,
    /// Its value, units per one pivot.
    pub rate: String,
    /// The median of all the sources' values (absent for outcomes stored before it was).
    pub median: Option<String>,
    /// Why.
    pub reason: String,
}

/// The consensus outcomes in force at some time during the day before `now`, of the currencies
/// `quotes` against `base`: the ones first seen in that day, and those in force when it began.
/// Returns the ids of the latter (the former are found by `observed_at`) and the day's start.
async fn in_force_at_start_of_day(
    db: &PgPool,
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<i64>, DateTime<Utc>)> {
    let since = now - TimeDelta::days(1);
    let mut conn = db.acquire().await?;
    let at_start = super::store::consensus_at(&mut conn, base, quotes, since).await?;
    Ok((at_start.values().map(|r| r.id).collect(), since))
}

/// Each of `sources` (the configured names, in order), as of `now`; exclusions are counted
/// over the consensus outcomes of `quotes` against `base` in force during the last day.
pub async fn sources(
    db: &PgPool,
    sources: &[String],
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<SourceHealth>> {
    let rows = sqlx::query!(
        r#"SELECT s.name AS "source!", last.fetched_at AS "last_fetch_at?", last.ok AS "last_ok?",
                  last.latency_ms AS "last_latency_ms?", last.breaker AS "breaker?",
                  last.error AS "last_error?", ok.fetched_at AS "last_success_at?"
           FROM unnest($1::text[]) WITH ORDINALITY AS s(name, position)
           LEFT JOIN LATERAL (
               SELECT fetched_at, ok, latency_ms, breaker, error FROM rate_source_fetches
               WHERE source = s.name ORDER BY fetched_at DESC, id DESC LIMIT 1
           ) last ON true
           LEFT JOIN LATERAL (
               SELECT fetched_at FROM rate_source_fetches
               WHERE source = s.name AND ok ORDER BY fetched_at DESC, id DESC LIMIT 1
           ) ok ON true
           ORDER BY s.position"#,
        sources,
    )
    .fetch_all(db)
    .await
    .context("reading the rates sources' fetches")?;
    let (at_start, since) = in_force_at_start_of_day(db, base, quotes, now).await?;
    let counts = sqlx::query!(
        r#"SELECT e->>'source' AS "source!", o.quote AS "quote!: CurrencyCode",
                  count(*) AS "count!"
           FROM rate_consensus_observations o, jsonb_array_elements(o.excluded) AS e
           WHERE o.observed_at > $1 OR o.id = ANY($2)
           GROUP BY 1, 2"#,
        since,
        &at_start,
    )
    .fetch_all(db)
    .await
    .context("counting exclusions")?;
    let mut exclusions: BTreeMap<String, BTreeMap<CurrencyCode, i64>> = BTreeMap::new();
    for c in counts {
        exclusions
            .entry(c.source)
            .or_default()
            .insert(c.quote, c.count);
    }
    Ok(rows
        .into_iter()
        .map(|r| SourceHealth {
            exclusions: exclusions.remove(&r.source).unwrap_or_default(),
            source: r.source,
            last_fetch_at: r.last_fetch_at,
            last_ok: r.last_ok.unwrap_or(false),
            last_latency_ms: r.last_latency_ms,
            breaker: r.breaker,
            last_error: r.last_error,
            last_success_at: r.last_success_at,
        })
        .collect())
}

/// The exclusions in force during the last day before `now` (of `quotes` against `base`),
/// newest first, at most `limit`.
pub async fn recent_exclusions(
    db: &PgPool,
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    now: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<Exclusion>> {
    let (at_start, since) = in_force_at_start_of_day(db, base, quotes, now).await?;
    let rows = sqlx::query!(
        r#"SELECT o.observed_at, o.last_seen_at, o.quote AS "quote!: CurrencyCode",
                  e->>'source' AS "source!", e->>'rate' AS "rate!", e->>'median' AS median,
                  e->>'reason' AS "reason!"
           FROM rate_consensus_observations o, jsonb_array_elements(o.excluded) AS e
           WHERE o.observed_at > $1 OR o.id = ANY($3)
           ORDER BY o.observed_at DESC, o.quote, e->>'source'
           LIMIT $2"#,
        since,
        limit,
        &at_start,
    )
    .fetch_all(db)
    .await
    .context("reading recent exclusions")?;
    Ok(rows
        .into_iter()
        .map(|r| Exclusion {
            observed_at: r.observed_at,
            last_seen_at: r.last_seen_at,
            source: r.source,
            currency: r.quote,
            rate: r.rate,
            median: r.median,
            reason: r.reason,
        })
        .collect())
}

/// Deletes at most `limit` fetch records older than `before`; returns how many.
pub async fn delete_fetches_before(
    db: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM rate_source_fetches WHERE id IN (
             SELECT id FROM rate_source_fetches WHERE fetched_at < $1 LIMIT $2)",
        before,
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

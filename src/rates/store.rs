//! SQL for `rate_snapshots` and `rate_quotes`. Rates go in and out as text and `NUMERIC`, never
//! as floats. This module knows tables, not policy: validation and change detection are done by
//! the callers in [`super::service`] and [`super::import`].

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::Context;
use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::currencies::CurrencyCode;
use crate::money::Rate;

/// The name the consensus of `rates.sources` is stored under (`rate_snapshots.provider`).
pub const CONSENSUS_FEED: &str = "consensus";

/// One stored publication of a provider.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    /// Row id.
    pub id: i64,
    /// Provider name (`ProviderKind::as_str`).
    pub provider: String,
    /// Base every quote of the snapshot is against.
    pub base: CurrencyCode,
    /// Provider timestamp.
    pub as_of: DateTime<Utc>,
    /// Our first fetch of this publication.
    pub fetched_at: DateTime<Utc>,
    /// Our last fetch that returned this publication.
    pub last_seen_at: DateTime<Utc>,
    /// Currencies quoted in it (never the base).
    pub currencies: Vec<CurrencyCode>,
}

/// The rate of one currency in force at some instant, with the row it comes from.
#[derive(Debug, Clone)]
pub struct StoredQuote {
    /// `rate_quotes.id`.
    pub id: i64,
    /// Units per one base.
    pub rate: Rate,
    /// When this value was first published.
    pub as_of: DateTime<Utc>,
}

/// `rate_snapshots` as read; `currencies` is a text array, checked code by code.
struct SnapshotRecord {
    id: i64,
    provider: String,
    base: CurrencyCode,
    as_of: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    currencies: Vec<String>,
}

impl From<SnapshotRecord> for SnapshotRow {
    fn from(r: SnapshotRecord) -> Self {
        SnapshotRow {
            id: r.id,
            provider: r.provider,
            base: r.base,
            as_of: r.as_of,
            fetched_at: r.fetched_at,
            last_seen_at: r.last_seen_at,
            currencies: r
                .currencies
                .iter()
                .filter_map(|c| CurrencyCode::parse(c).ok())
                .collect(),
        }
    }
}

/// The newest snapshot at or before `at` (any provider), or the newest of all when `at` is
/// `None`. Ties on `as_of` go to the most recently confirmed one.
pub async fn snapshot_at(
    db: &PgPool,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<Option<SnapshotRow>> {
    let row = sqlx::query_as!(
        SnapshotRecord,
        r#"SELECT id, provider, base AS "base: CurrencyCode", as_of, fetched_at, last_seen_at,
                  currencies
           FROM rate_snapshots
           -- Not `$1 IS NULL OR as_of <= $1`: after five executions PostgreSQL may pick a generic
           -- plan for that which scans the whole index (35 ms instead of 0.1 ms on 10M quotes).
           WHERE as_of <= COALESCE($1::timestamptz, 'infinity')
           ORDER BY as_of DESC, last_seen_at DESC LIMIT 1"#,
        at,
    )
    .fetch_optional(db)
    .await
    .context("reading the rate snapshot")?;
    Ok(row.map(Into::into))
}

/// The newest snapshot of each provider (by publication time, then last confirmation).
pub async fn newest_per_provider(db: &PgPool) -> anyhow::Result<Vec<SnapshotRow>> {
    let rows = sqlx::query_as!(
        SnapshotRecord,
        r#"SELECT DISTINCT ON (provider) id, provider, base AS "base: CurrencyCode", as_of,
                  fetched_at, last_seen_at, currencies
           FROM rate_snapshots
           ORDER BY provider, as_of DESC, last_seen_at DESC"#
    )
    .fetch_all(db)
    .await
    .context("reading the newest snapshot of each provider")?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The newest stored publication time for a provider and base, if any.
pub async fn newest_as_of(
    conn: &mut PgConnection,
    provider: &str,
    base: CurrencyCode,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "SELECT max(as_of) FROM rate_snapshots WHERE provider = $1 AND base = $2",
        provider,
        base.as_str(),
    )
    .fetch_one(conn)
    .await?)
}

/// For each of `quotes`, the newest stored row of `(provider, base, quote)` at or before `at`.
/// One index probe per currency.
pub async fn quotes_at(
    conn: &mut PgConnection,
    provider: &str,
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    at: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<CurrencyCode, StoredQuote>> {
    let codes: Vec<String> = quotes.iter().map(|c| c.to_string()).collect();
    let rows = sqlx::query!(
        r#"SELECT c.code AS "quote!: CurrencyCode", q.id AS "id!", q.rate::text AS "rate!",
                  q.as_of AS "as_of!"
           FROM unnest($3::text[]) AS c(code)
           CROSS JOIN LATERAL (
               SELECT id, rate, as_of FROM rate_quotes
               WHERE provider = $1 AND base = $2 AND quote = c.code AND as_of <= $4
               ORDER BY as_of DESC LIMIT 1
           ) q"#,
        provider,
        base.as_str(),
        &codes,
        at,
    )
    .fetch_all(conn)
    .await
    .context("reading stored quotes")?;
    let mut out = BTreeMap::new();
    for row in rows {
        let rate = row.rate;
        out.insert(
            row.quote,
            StoredQuote {
                id: row.id,
                rate: Rate::parse(&rate).with_context(|| format!("stored rate `{rate}`"))?,
                as_of: row.as_of,
            },
        );
    }
    Ok(out)
}

/// A snapshot row to write.
pub struct NewSnapshot<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Its base.
    pub base: CurrencyCode,
    /// Provider timestamp.
    pub as_of: DateTime<Utc>,
    /// Our fetch time.
    pub fetched_at: DateTime<Utc>,
    /// Currencies quoted.
    pub currencies: &'a [CurrencyCode],
    /// Rows written to `rate_quotes` for it.
    pub changed_count: usize,
}

/// Inserts the snapshot, or, when the same publication is stored already, only moves its
/// `last_seen_at`. Returns whether a new row was inserted.
pub async fn upsert_snapshot(conn: &mut PgConnection, s: &NewSnapshot<'_>) -> anyhow::Result<bool> {
    let codes: Vec<String> = s.currencies.iter().map(|c| c.to_string()).collect();
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO rate_snapshots
               (provider, base, as_of, fetched_at, last_seen_at, currencies, quote_count, changed_count)
           VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
           ON CONFLICT (provider, base, as_of)
           DO UPDATE SET last_seen_at = GREATEST(rate_snapshots.last_seen_at, EXCLUDED.last_seen_at)
           RETURNING (xmax = 0) AS "inserted!""#,
        s.provider,
        s.base.as_str(),
        s.as_of,
        s.fetched_at,
        &codes,
        i32::try_from(codes.len()).unwrap_or(i32::MAX),
        i32::try_from(s.changed_count).unwrap_or(i32::MAX),
    )
    .fetch_one(conn)
    .await
    .context("storing the rate snapshot")?;
    Ok(inserted)
}

/// Quote rows to insert in one statement (parallel columns).
#[derive(Debug, Default)]
pub struct QuoteBatch {
    /// Quote currency of each row.
    pub quotes: Vec<String>,
    /// Publication time of each row.
    pub as_of: Vec<DateTime<Utc>>,
    /// Rate of each row.
    pub rates: Vec<BigDecimal>,
}

impl QuoteBatch {
    /// Adds one row.
    pub fn push(&mut self, quote: CurrencyCode, as_of: DateTime<Utc>, rate: &Rate) {
        self.quotes.push(quote.to_string());
        self.as_of.push(as_of);
        self.rates.push(rate.value().clone());
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.quotes.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.quotes.is_empty()
    }
}

/// Inserts the batch (one statement, arrays unnested); rows already stored are skipped.
/// Returns how many rows were inserted.
pub async fn insert_quotes(
    conn: &mut PgConnection,
    provider: &str,
    base: CurrencyCode,
    fetched_at: DateTime<Utc>,
    batch: &QuoteBatch,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "INSERT INTO rate_quotes (provider, base, quote, as_of, rate, fetched_at)
         SELECT $1, $2, q, t, r, $6
         FROM unnest($3::text[], $4::timestamptz[], $5::numeric[]) AS u(q, t, r)
         ON CONFLICT (provider, base, quote, as_of) DO NOTHING",
        provider,
        base.as_str(),
        &batch.quotes,
        &batch.as_of,
        &batch.rates,
        fetched_at,
    )
    .execute(conn)
    .await
    .context("storing rate quotes")?;
    Ok(done.rows_affected())
}

/// Takes a transaction-scoped lock on one provider and base, so that two instances storing the
/// same feed do not both decide a quote "changed".
pub async fn lock_feed(
    conn: &mut PgConnection,
    provider: &str,
    base: CurrencyCode,
) -> anyhow::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtext('rates:' || $1::text || ':' || $2::text))",
        provider,
        base.as_str(),
    )
    .execute(conn)
    .await
    .context("locking the rates feed")?;
    Ok(())
}

/// One stored change of a currency, for series.
#[derive(Debug, Clone)]
pub struct QuoteChange {
    /// Currency.
    pub quote: CurrencyCode,
    /// Publication time.
    pub as_of: DateTime<Utc>,
    /// New rate.
    pub rate: Rate,
}

/// Changes of `quotes` for a provider and base in `(from, to]`, oldest first, at most `limit`.
pub async fn changes_between(
    db: &PgPool,
    provider: &str,
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<QuoteChange>> {
    let codes: Vec<String> = quotes.iter().map(|c| c.to_string()).collect();
    let rows = sqlx::query!(
        r#"SELECT quote AS "quote: CurrencyCode", as_of, rate::text AS "rate!" FROM rate_quotes
           WHERE provider = $1 AND base = $2 AND quote = ANY($3) AND as_of > $4 AND as_of <= $5
           ORDER BY as_of, quote LIMIT $6"#,
        provider,
        base.as_str(),
        &codes,
        from,
        to,
        limit,
    )
    .fetch_all(db)
    .await
    .context("reading rate changes")?;
    rows.into_iter()
        .map(|row| {
            let rate = row.rate;
            Ok(QuoteChange {
                quote: row.quote,
                as_of: row.as_of,
                rate: Rate::parse(&rate).with_context(|| format!("stored rate `{rate}`"))?,
            })
        })
        .collect()
}

/// Parses a `NUMERIC` read as text (used by tests and tools).
pub fn numeric(text: &str) -> anyhow::Result<BigDecimal> {
    BigDecimal::from_str(text).with_context(|| format!("`{text}` is not a decimal"))
}

/// One currency's consensus outcome as stored in `rate_consensus_observations`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusRow {
    /// `rate_consensus_observations.id` (0 for an outcome not stored yet).
    pub id: i64,
    /// The quoted currency.
    pub quote: CurrencyCode,
    /// The consensus, or `None` below the quorum.
    pub rate: Option<Rate>,
    /// Agreeing sources.
    pub used: Vec<String>,
    /// `[{"source", "rate", "reason"}]`.
    pub excluded: serde_json::Value,
    /// First fetch that saw this outcome.
    pub observed_at: DateTime<Utc>,
    /// Last fetch that saw it.
    pub last_seen_at: DateTime<Utc>,
    /// The currency's newest outcome with a rate, at or before the instant read (this one when
    /// it agreed): the consensus a currency below its quorum is still served from, and the
    /// sources that made it. Read only; never written.
    pub last_agreed: Option<Agreed>,
}

/// A consensus that was reached: its rate, the sources that made it, and the last fetch that
/// confirmed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreed {
    /// The consensus rate.
    pub rate: Rate,
    /// The sources whose values made it.
    pub used: Vec<String>,
    /// The last fetch at which the sources still agreed on it.
    pub last_seen_at: DateTime<Utc>,
}

/// For each of `quotes` against `base`, the newest outcome at or before `at`, with the newest
/// agreement at or before `at`. Two backward probes of `rate_consensus_observations_as_of_idx`
/// per currency, however long the history is (a `DISTINCT ON` over the base would read every
/// row ever stored for it).
pub async fn consensus_at(
    conn: &mut PgConnection,
    base: CurrencyCode,
    quotes: &[CurrencyCode],
    at: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<CurrencyCode, ConsensusRow>> {
    let codes: Vec<String> = quotes.iter().map(|c| c.to_string()).collect();
    let rows = consensus_at_query(base, &codes, at)
        .fetch_all(conn)
        .await
        .context("reading consensus observations")?;
    rows.into_iter()
        .map(|r| {
            let rate = r.rate.as_deref().map(Rate::parse).transpose()?;
            let excluded = serde_json::from_str(&r.excluded).context("reading `excluded`")?;
            let last_agreed = match (r.agreed_rate, r.agreed_used, r.agreed_seen_at) {
                (Some(rate), Some(used), Some(last_seen_at)) => Some(Agreed {
                    rate: Rate::parse(&rate)?,
                    used,
                    last_seen_at,
                }),
                _ => None,
            };
            Ok((
                r.quote,
                ConsensusRow {
                    id: r.id,
                    quote: r.quote,
                    rate,
                    used: r.used,
                    excluded,
                    observed_at: r.observed_at,
                    last_seen_at: r.last_seen_at,
                    last_agreed,
                },
            ))
        })
        .collect()
}

/// The statement of [`consensus_at`], apart so that its plan can be checked
/// ([`consensus_at_sql`]).
fn consensus_at_query<'q>(
    base: CurrencyCode,
    codes: &'q [String],
    at: DateTime<Utc>,
) -> sqlx::query::Map<
    'q,
    sqlx::Postgres,
    impl FnMut(sqlx::postgres::PgRow) -> Result<ConsensusRecord, sqlx::Error> + Send,
    sqlx::postgres::PgArguments,
> {
    sqlx::query_as!(
        ConsensusRecord,
        r#"SELECT o.id AS "id!", c.code AS "quote!: CurrencyCode", o.rate::text AS "rate?",
                  o.used AS "used!", o.excluded::text AS "excluded!",
                  o.observed_at AS "observed_at!", o.last_seen_at AS "last_seen_at!",
                  a.rate::text AS "agreed_rate?", a.used AS "agreed_used?",
                  a.last_seen_at AS "agreed_seen_at?"
           FROM unnest($2::text[]) AS c(code)
           CROSS JOIN LATERAL (
               SELECT id, rate, used, excluded, observed_at, last_seen_at
               FROM rate_consensus_observations
               WHERE base = $1 AND quote = c.code AND observed_at <= $3
               ORDER BY observed_at DESC, id DESC LIMIT 1
           ) o
           LEFT JOIN LATERAL (
               SELECT rate, used, last_seen_at FROM rate_consensus_observations
               WHERE base = $1 AND quote = c.code AND observed_at <= $3 AND rate IS NOT NULL
               ORDER BY observed_at DESC, id DESC LIMIT 1
           ) a ON true"#,
        base.as_str(),
        codes,
        at,
    )
}

/// The text of [`consensus_at`]'s statement (`$1` base, `$2` codes, `$3` instant), for
/// checking its plan with `EXPLAIN` on a populated table.
pub fn consensus_at_sql() -> String {
    use sqlx::Execute;
    let base = CurrencyCode::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is a code"));
    consensus_at_query(base, &[], DateTime::<Utc>::MIN_UTC)
        .sql()
        .as_str()
        .to_owned()
}

/// A row of [`consensus_at`]'s statement.
struct ConsensusRecord {
    id: i64,
    quote: CurrencyCode,
    rate: Option<String>,
    used: Vec<String>,
    excluded: String,
    observed_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    agreed_rate: Option<String>,
    agreed_used: Option<Vec<String>>,
    agreed_seen_at: Option<DateTime<Utc>>,
}

/// Moves `last_seen_at` of the rows `ids` (each currency's newest outcome, seen again).
pub async fn touch_consensus(
    conn: &mut PgConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE rate_consensus_observations SET last_seen_at = $2
         WHERE id = ANY($1) AND last_seen_at < $2",
        ids,
        now,
    )
    .execute(conn)
    .await
    .context("confirming consensus observations")?;
    Ok(())
}

/// Records new outcomes (one row each).
pub async fn insert_consensus(
    conn: &mut PgConnection,
    base: CurrencyCode,
    now: DateTime<Utc>,
    rows: &[ConsensusRow],
) -> anyhow::Result<()> {
    let quotes: Vec<String> = rows.iter().map(|r| r.quote.to_string()).collect();
    let rates: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.rate.as_ref().map(|x| x.to_string()))
        .collect();
    let used: Vec<String> = rows.iter().map(|r| r.used.join(",")).collect();
    // jsonb travels as text, so that the pool needs no JSON codec.
    let excluded: Vec<String> = rows.iter().map(|r| r.excluded.to_string()).collect();
    sqlx::query!(
        r#"INSERT INTO rate_consensus_observations
               (base, quote, observed_at, last_seen_at, rate, used, excluded)
           SELECT $1, q, $2, $2, r::numeric,
                  CASE WHEN u = '' THEN '{}'::text[] ELSE string_to_array(u, ',') END, e::jsonb
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS t(q, r, u, e)"#,
        base.as_str(),
        now,
        &quotes,
        &rates as &[Option<String>],
        &used,
        &excluded,
    )
    .execute(conn)
    .await
    .context("storing consensus observations")?;
    Ok(())
}

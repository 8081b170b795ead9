//! Loads the ECB history CSV (`eurofxref-hist.csv`) into `rate_quotes` as provider `ecb`, base
//! EUR, each day at 15:00 UTC, change-only like live fetches, idempotently and in one
//! transaction.
//!
//! The file is newest first. Rather than reverse it in memory, the import streams it and keeps,
//! per currency, the oldest day seen so far of the current run of equal values: when an older
//! day has a different value, that run's first day is a change and is written. `N/A` days do
//! not break a run (the snapshot of such a day does not list the currency).

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::Rates;
use super::ecb_csv::EcbCsvReader;
use super::store::{self, QuoteBatch};
use crate::currencies::CurrencyCode;
use crate::money::Rate;

/// Provider name of imported history.
pub const PROVIDER: &str = "ecb";

/// Provider name of the history embedded in the binary and stored by `seed`: it was not fetched
/// from anyone, and the API and the monitor say so.
pub const SEED_PROVIDER: &str = "seed";

/// Quote rows per INSERT statement.
pub const BATCH_ROWS: usize = 5_000;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Days read.
    pub days: usize,
    /// Day snapshots newly written.
    pub snapshots_inserted: u64,
    /// Quote rows written (changes not stored before).
    pub quotes_inserted: u64,
    /// Currencies of the file that were added as historic (retired) currencies.
    pub currencies_added: Vec<CurrencyCode>,
}

/// The instant given to an ECB publication day.
pub fn publication_instant(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::from_hms_opt(15, 0, 0).unwrap_or(NaiveTime::MIN))
        .and_utc()
}

struct Writer {
    provider: &'static str,
    base: CurrencyCode,
    fetched_at: DateTime<Utc>,
    quotes: QuoteBatch,
    snapshot_as_of: Vec<DateTime<Utc>>,
    snapshot_codes: Vec<String>,
    report: ImportReport,
}

impl Writer {
    async fn flush(&mut self, conn: &mut PgConnection, force: bool) -> anyhow::Result<()> {
        if force || self.quotes.len() >= BATCH_ROWS {
            self.report.quotes_inserted += store::insert_quotes(
                conn,
                self.provider,
                self.base,
                self.fetched_at,
                &self.quotes,
            )
            .await?;
            self.quotes = QuoteBatch::default();
        }
        if force || self.snapshot_as_of.len() >= BATCH_ROWS {
            if !self.snapshot_as_of.is_empty() {
                let done = sqlx::query!(
                    "INSERT INTO rate_snapshots
                         (provider, base, as_of, fetched_at, last_seen_at, currencies, quote_count, changed_count)
                     SELECT $1, $2, t, $5, $5, c, cardinality(c), 0
                     FROM unnest($3::timestamptz[], $4::text[]) AS u(t, codes),
                          LATERAL (SELECT string_to_array(codes, ',') AS c) a
                     ON CONFLICT (provider, base, as_of) DO NOTHING",
                    self.provider,
                    self.base.as_str(),
                    &self.snapshot_as_of,
                    &self.snapshot_codes,
                    self.fetched_at,
                )
                .execute(&mut *conn)
                .await
                .context("storing day snapshots")?;
                self.report.snapshots_inserted += done.rows_affected();
            }
            self.snapshot_as_of.clear();
            self.snapshot_codes.clear();
        }
        Ok(())
    }
}

/// Imports an ECB history file as provider `ecb`. Currencies of the file not yet known are
/// added as historic (retired) ones first, so that the foreign keys hold.
pub async fn import_ecb<R: BufRead>(state: &Rates, input: R) -> anyhow::Result<ImportReport> {
    import_ecb_as(state, PROVIDER, input).await
}

/// Imports an ECB history file under the given provider name ([`PROVIDER`] for a file the
/// operator downloaded, [`SEED_PROVIDER`] for the embedded one).
#[tracing::instrument(name = "rates.import_ecb", skip(state, input))]
pub async fn import_ecb_as<R: BufRead>(
    state: &Rates,
    provider: &'static str,
    input: R,
) -> anyhow::Result<ImportReport> {
    let now = state.clock.now();
    let base = CurrencyCode::parse("EUR").context("EUR")?;
    let reader = EcbCsvReader::new(input).context("reading the ECB CSV header")?;
    let mut added = Vec::new();
    for code in reader.currencies().chain([base]) {
        let known = crate::currencies::service::find(&state.db, code)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        if known.is_none() {
            crate::currencies::service::ensure_historic(&state.db, code, now)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            added.push(code);
        }
    }
    let mut tx = state.db.begin().await?;
    store::lock_feed(&mut tx, provider, base).await?;
    let mut writer = Writer {
        provider,
        base,
        fetched_at: now,
        quotes: QuoteBatch::default(),
        snapshot_as_of: Vec::new(),
        snapshot_codes: Vec::new(),
        report: ImportReport {
            currencies_added: added,
            ..ImportReport::default()
        },
    };
    // Per currency: the oldest day so far of the current run of equal values.
    let mut runs: HashMap<CurrencyCode, (DateTime<Utc>, Rate)> = HashMap::new();
    let mut newer_day: Option<NaiveDate> = None;
    for day in reader {
        let (date, quotes) = day.context("reading the ECB CSV")?;
        if newer_day.is_some_and(|newer| date >= newer) {
            anyhow::bail!("the file is not newest first: {date} after {newer_day:?}");
        }
        newer_day = Some(date);
        writer.report.days += 1;
        let as_of = publication_instant(date);
        let mut codes = Vec::with_capacity(quotes.len());
        for (code, rate) in quotes {
            codes.push(code.to_string());
            match runs.get_mut(&code) {
                Some(run) if run.1 == rate => run.0 = as_of,
                Some(run) => {
                    let (start, value) = std::mem::replace(run, (as_of, rate));
                    writer.quotes.push(code, start, &value);
                }
                None => {
                    runs.insert(code, (as_of, rate));
                }
            }
        }
        codes.sort();
        writer.snapshot_as_of.push(as_of);
        writer.snapshot_codes.push(codes.join(","));
        writer.flush(&mut tx, false).await?;
    }
    // The oldest run of each currency starts a change unless the value stored just before it
    // (an earlier import of older data) is the same.
    let firsts: BTreeMap<CurrencyCode, (DateTime<Utc>, Rate)> = runs.into_iter().collect();
    for (code, (start, value)) in firsts {
        let before = store::quotes_at(
            &mut tx,
            provider,
            base,
            &[code],
            start - TimeDelta::microseconds(1),
        )
        .await?;
        if before.get(&code).is_none_or(|q| q.rate != value) {
            writer.quotes.push(code, start, &value);
        }
    }
    writer.flush(&mut tx, true).await?;
    sqlx::query!(
        "UPDATE rate_snapshots s SET changed_count = c.n
         FROM (SELECT as_of, count(*)::int AS n FROM rate_quotes
               WHERE provider = $1 AND base = $2 GROUP BY as_of) c
         WHERE s.provider = $1 AND s.base = $2 AND s.as_of = c.as_of
           AND s.changed_count IS DISTINCT FROM c.n",
        provider,
        base.as_str(),
    )
    .execute(&mut *tx)
    .await
    .context("counting changes per day")?;
    tx.commit().await.context("committing the ECB import")?;
    if writer.report.quotes_inserted > 0 || writer.report.snapshots_inserted > 0 {
        super::cache::announce_new_rates(state).await;
    }
    Ok(writer.report)
}

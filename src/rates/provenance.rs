//! Where each consensus rate came from, stored change-only: a fetch whose outcome for a
//! currency (its rate, the sources used, the ones excluded with their values and reasons) is the
//! one stored last only confirms that row; any difference adds one.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::consensus::Agreement;
use super::store::{self, ConsensusRow};
use crate::currencies::CurrencyCode;

/// The row recording `agreement` for `quote`, at `now`.
pub fn row(quote: CurrencyCode, agreement: &Agreement, now: DateTime<Utc>) -> ConsensusRow {
    ConsensusRow {
        quote,
        rate: agreement.rate.clone(),
        used: agreement.used.clone(),
        excluded: serde_json::to_value(&agreement.excluded)
            .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
        observed_at: now,
        last_seen_at: now,
    }
}

/// Records the outcomes of one fetch: confirms the currencies whose outcome is unchanged,
/// adds a row for every other one.
pub async fn record(
    conn: &mut PgConnection,
    base: CurrencyCode,
    now: DateTime<Utc>,
    outcomes: &[ConsensusRow],
) -> anyhow::Result<()> {
    let previous = store::consensus_at(conn, base, now).await?;
    let (same, changed): (Vec<&ConsensusRow>, Vec<&ConsensusRow>) =
        outcomes.iter().partition(|o| {
            previous
                .get(&o.quote)
                .is_some_and(|p| p.rate == o.rate && p.used == o.used && p.excluded == o.excluded)
        });
    let same: Vec<CurrencyCode> = same.iter().map(|o| o.quote).collect();
    store::touch_consensus(conn, &same, base, now).await?;
    let changed: Vec<ConsensusRow> = changed.into_iter().cloned().collect();
    store::insert_consensus(conn, base, now, &changed).await
}

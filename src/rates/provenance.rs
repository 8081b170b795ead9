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
        id: 0,
        quote,
        rate: agreement.rate.clone(),
        used: agreement.used.clone(),
        excluded: serde_json::to_value(&agreement.excluded)
            .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
        observed_at: now,
        last_seen_at: now,
        last_agreed: None,
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
    let quotes: Vec<CurrencyCode> = outcomes.iter().map(|o| o.quote).collect();
    let previous = store::consensus_at(conn, base, &quotes, now).await?;
    let mut same = Vec::new();
    let mut changed = Vec::new();
    for o in outcomes {
        match previous.get(&o.quote) {
            Some(p) if p.rate == o.rate && p.used == o.used && p.excluded == o.excluded => {
                same.push(p.id)
            }
            _ => changed.push(o),
        }
    }
    store::touch_consensus(conn, &same, now).await?;
    let changed: Vec<ConsensusRow> = changed.into_iter().cloned().collect();
    store::insert_consensus(conn, base, now, &changed).await
}

//! Where each consensus rate came from, stored change-only: a fetch whose outcome for a
//! currency (its rate, the sources used, the ones excluded with their values and reasons) is the
//! one stored last only confirms that row; any difference adds one.
//!
//! A currency whose sources stop reaching the quorum, or reach it again, is announced to the
//! partners subscribed to `rates.degraded` / `rates.recovered`, through webhooks' outbox in the
//! same transaction as the observation. That transaction holds the feed's lock
//! ([`store::lock_feed`]) while it compares with the stored outcome, so each change is
//! announced once however many instances fetch.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::consensus::Agreement;
use super::store::{self, ConsensusRow};
use crate::currencies::CurrencyCode;
use crate::money::Rate;
use crate::webhooks::EventType;

/// The `data` of a `rates.degraded` or `rates.recovered` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatesAlert {
    /// The currency whose sources' agreement changed.
    #[schema(value_type = String, example = "USD")]
    pub currency: CurrencyCode,
    /// The pivot its rates are against (`rates.base`).
    #[schema(value_type = String, example = "EUR")]
    pub base: CurrencyCode,
    /// `rates.recovered`: the new consensus (units of `currency` per one `base`);
    /// `rates.degraded`: `null`, nothing is priced on the currency until the next one.
    #[schema(value_type = Option<String>, example = "1.1")]
    pub rate: Option<Rate>,
    /// The sources whose values agree now (fewer than the quorum for `rates.degraded`).
    pub used: Vec<String>,
    /// The sources left out, each `{"source", "rate", "median", "reason"}`.
    #[schema(value_type = Vec<Object>)]
    pub excluded: serde_json::Value,
    /// The fetch that saw the change.
    pub observed_at: DateTime<Utc>,
}

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
    let (mut degraded, mut recovered) = (Vec::new(), Vec::new());
    for o in &changed {
        let Some(p) = previous.get(&o.quote) else {
            // A currency's first outcome changes nothing a partner was told.
            continue;
        };
        let alert = || RatesAlert {
            currency: o.quote,
            base,
            rate: o.rate.clone(),
            used: o.used.clone(),
            excluded: o.excluded.clone(),
            observed_at: now,
        };
        match (&p.rate, &o.rate) {
            (Some(_), None) => degraded.push(alert()),
            // Recovered from below the quorum, not agreeing for the first time.
            (None, Some(_)) if p.last_agreed.is_some() => recovered.push(alert()),
            _ => {}
        }
    }
    if !degraded.is_empty() {
        let codes: Vec<CurrencyCode> = degraded.iter().map(|a| a.currency).collect();
        tracing::warn!(currencies = ?codes, "rates degraded: sources below the quorum");
    }
    crate::webhooks::outbox::broadcast(conn, EventType::RatesDegraded, now, &degraded).await?;
    crate::webhooks::outbox::broadcast(conn, EventType::RatesRecovered, now, &recovered).await?;
    let changed: Vec<ConsensusRow> = changed.into_iter().cloned().collect();
    store::insert_consensus(conn, base, now, &changed).await
}

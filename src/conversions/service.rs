//! The use cases of a conversion after its creation: read, cancel, finalize. Creating one is
//! [`super::create`] (a batch: [`super::batch`]); what a conversion is, [`super::domain`].

use uuid::Uuid;

use super::Conversions;
pub use super::domain::{ConversionError, ConversionView, Status};
use super::store;
use crate::auth::PartnerId;
use crate::webhooks::EventType;

/// Conversions finalized per statement; small batches keep row locks short.
pub const FINALIZE_BATCH: i64 = 500;

/// A conversion visible to the caller: partners see only their own (another partner's is
/// "not found", never "forbidden", so existence does not leak).
pub async fn get(
    conversions: &Conversions,
    id: Uuid,
    partner: Option<PartnerId>,
) -> Result<ConversionView, ConversionError> {
    let row = store::find(&conversions.db, id)
        .await?
        .ok_or(ConversionError::NotFound)?;
    if partner.is_some_and(|p| p.as_uuid() != row.partner_id) {
        return Err(ConversionError::NotFound);
    }
    Ok(row.into())
}

pub async fn cancel(
    conversions: &Conversions,
    id: Uuid,
    partner: PartnerId,
) -> Result<ConversionView, ConversionError> {
    let now = conversions.clock.now();
    let mut tx = conversions.db.begin().await?;
    if let Some(row) = store::cancel(&mut tx, id, partner, now).await? {
        let view = ConversionView::from(row);
        crate::webhooks::outbox::record(
            &mut tx,
            EventType::ConversionCancelled,
            now,
            [(partner, &view)],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(conversion_id = %id, "conversion cancelled");
        return Ok(view);
    }
    tx.rollback().await?;
    // Why not: missing/foreign (404), already final, or past its holding period.
    let current = get(conversions, id, Some(partner)).await?;
    match current.status {
        Status::Cancelled => Ok(current),
        Status::Permanent => Err(ConversionError::NotCancellable("permanent")),
        Status::Temporary => Err(ConversionError::Finalizing {
            finalizes_at: current.finalizes_at,
        }),
    }
}

/// Makes every due temporary conversion permanent, in batches. Idempotent: a second run finds
/// nothing to do.
pub async fn finalize_due(conversions: &Conversions) -> anyhow::Result<u64> {
    let now = conversions.clock.now();
    let mut total = 0;
    loop {
        // Each batch commits with its `conversion.finalized` events; delivery happens later,
        // outside this transaction.
        let mut tx = conversions.db.begin().await?;
        let rows = store::finalize_due(&mut tx, now, FINALIZE_BATCH).await?;
        let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let views: Vec<ConversionView> = rows.into_iter().map(ConversionView::from).collect();
        crate::webhooks::outbox::record(
            &mut tx,
            EventType::ConversionFinalized,
            now,
            views
                .iter()
                .map(|v| (PartnerId::from_uuid(v.partner_id), v)),
        )
        .await?;
        tx.commit().await?;
        total += n;
        if n < u64::try_from(FINALIZE_BATCH).unwrap_or(u64::MAX) {
            break;
        }
    }
    if total > 0 {
        tracing::info!(finalized = total, "conversions finalized");
    }
    Ok(total)
}

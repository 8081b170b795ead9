//! Batch conversions: up to [`MAX_BATCH_ITEMS`] conversions in one request, all or nothing.
//! Every item is checked before anything is stored, and every bad item is reported (by index
//! and field); a valid batch is stored in one transaction with a fixed number of statements
//! (the conversions go in as arrays, not one `INSERT` each).

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Conversions;
use super::create::{RateSource, new_row, quote_use_error};
use super::idempotency::{self, IdempotencyKey, KeyScope};
use super::pricing::{parse_amount, refuse_stale};
use super::service::{self, ConversionError, ConversionView};
use super::store;
use crate::auth::PartnerId;
use crate::currencies::{Currency, CurrencyCode, service as currencies};
use crate::money::{Amount, RequestedAmount};
use crate::quotes::service as quotes;
use crate::rates::{RateQuote, RatesError};

/// Most conversions in one batch.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// One conversion of a batch, as the partner sent it (fields may be missing: each is reported).
#[derive(Debug, Clone, Default)]
pub struct BatchItem<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub amount: Option<&'a str>,
    pub quote_id: Option<&'a str>,
}

/// What is wrong with one item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Position in `items`, from 0.
    pub index: usize,
    /// The item's field (`from`, `to`, `amount`, `quote_id`).
    pub field: &'static str,
    pub message: String,
}

/// A stored batch: its conversions in request order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchView {
    pub id: Uuid,
    pub conversions: Vec<ConversionView>,
}

/// An item that passed every check that needs no lock: currencies, amount, and (without a
/// quote) the rate in force.
struct CheckedItem {
    from: CurrencyCode,
    to: CurrencyCode,
    amount: Amount,
    minor_units: (i16, i16),
    /// Priced now, or `None` when the item converts on a quote.
    live: Option<RateQuote>,
    quote_id: Option<Uuid>,
}

type FieldResult<T> = Result<T, (&'static str, String)>;

fn required<'a>(field: &'static str, value: Option<&'a str>) -> FieldResult<&'a str> {
    value.ok_or((field, "is required".to_owned()))
}

fn usable<'c>(
    known: &'c HashMap<CurrencyCode, Currency>,
    field: &'static str,
    raw: &str,
) -> FieldResult<&'c Currency> {
    let code = CurrencyCode::parse(raw).map_err(|e| (field, e.to_string()))?;
    match known.get(&code) {
        None => Err((field, format!("currency {code} is not supported"))),
        Some(c) if c.retired => Err((field, format!("currency {code} is retired"))),
        Some(c) if !c.enabled => Err((field, format!("currency {code} is disabled"))),
        Some(c) => Ok(c),
    }
}

/// Why the rate of a pair cannot be used, attributed to the currency it is about (`to` when
/// it is about the pair as a whole).
fn rate_error(from: CurrencyCode, e: ConversionError) -> (&'static str, String) {
    match e {
        ConversionError::Rates(RatesError::NotQuoted(code)) if code == from => {
            ("from", format!("no rate is stored for {code}"))
        }
        other => ("to", other.to_string()),
    }
}

/// The checks of one item that need no transaction. Rates come from memory (one lookup per
/// distinct pair), currencies from the list read once per batch.
async fn check_item(
    conversions: &Conversions,
    known: &HashMap<CurrencyCode, Currency>,
    priced: &mut HashMap<(CurrencyCode, CurrencyCode), FieldResult<RateQuote>>,
    item: &BatchItem<'_>,
) -> FieldResult<CheckedItem> {
    let from = usable(known, "from", required("from", item.from)?)?;
    let to = usable(known, "to", required("to", item.to)?)?;
    if from.code == to.code {
        return Err(("to", "must differ from `from`".into()));
    }
    // Items are read as text (so that every bad item is listed), so the amount is parsed here.
    let requested = RequestedAmount::parse(required("amount", item.amount)?)
        .map_err(|e| ("amount", e.to_string()))?;
    let amount = parse_amount(conversions, &requested, from.code, from.minor_units).map_err(
        |e| match e {
            ConversionError::Invalid { message, .. } => ("amount", message),
            other => ("amount", other.to_string()),
        },
    )?;
    let quote_id = item
        .quote_id
        .map(|raw| Uuid::parse_str(raw).map_err(|_| ("quote_id", "no such quote".to_owned())))
        .transpose()?;
    let live = match quote_id {
        Some(_) => None,
        None => {
            let key = (from.code, to.code);
            let quote = match priced.get(&key) {
                Some(known) => known.clone(),
                None => {
                    let quote =
                        crate::rates::service::quote(&conversions.rates, from.code, to.code, None)
                            .await
                            .map_err(ConversionError::from)
                            .and_then(|q| refuse_stale(conversions, &q).map(|()| q))
                            .map_err(|e| rate_error(from.code, e));
                    priced.insert(key, quote.clone());
                    quote
                }
            };
            Some(quote?)
        }
    };
    Ok(CheckedItem {
        from: from.code,
        to: to.code,
        amount,
        minor_units: (from.minor_units, to.minor_units),
        live,
        quote_id,
    })
}

/// What an `Idempotency-Key` remembers of a batch: every item as sent, in order.
fn batch_hash(items: &[BatchItem<'_>]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for item in items {
        for field in [item.from, item.to, item.amount, item.quote_id] {
            // Length-prefixed so that no two different batches hash the same text.
            let value = field.unwrap_or("\u{0}");
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        }
    }
    hasher.finalize().to_vec()
}

/// Converts every item or none. Invalid items → [`ConversionError::InvalidItems`] listing each
/// one and nothing stored. With an `Idempotency-Key`, the same key and items return the
/// original batch (`created = false`).
#[tracing::instrument(skip_all, fields(partner_id = %partner, items = items.len()))]
pub async fn create(
    conversions: &Conversions,
    partner: PartnerId,
    items: &[BatchItem<'_>],
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(BatchView, bool), ConversionError> {
    let idempotency_key = idempotency_key.map(IdempotencyKey::as_str);
    if items.is_empty() {
        return Err(service::invalid(
            "items",
            "must list at least one conversion",
        ));
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(service::invalid(
            "items",
            format!("at most {MAX_BATCH_ITEMS} conversions per batch"),
        ));
    }
    let known: HashMap<CurrencyCode, Currency> = currencies::list(&conversions.db, true)
        .await?
        .into_iter()
        .map(|c| (c.code, c))
        .collect();
    let mut priced = HashMap::new();
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match check_item(conversions, &known, &mut priced, item).await {
            Ok(c) => checked.push(Some(c)),
            Err((field, message)) => {
                errors.push(ItemError {
                    index,
                    field,
                    message,
                });
                checked.push(None);
            }
        }
    }

    // PostgreSQL keeps microseconds: the response and the webhooks show what a later read shows.
    let now: DateTime<Utc> = conversions.clock.now().trunc_subsecs(6);
    let batch_id = Uuid::now_v7();
    let mut tx = conversions.db.begin().await?;
    if let Some(key) = idempotency_key {
        let hash = batch_hash(items);
        let claim = idempotency::Claim {
            scope: KeyScope::Batch,
            partner,
            key,
            request_hash: &hash,
            id: batch_id,
        };
        if let Some(original) = idempotency::claim(conversions, &mut tx, claim, now).await? {
            tx.rollback().await?;
            let rows = store::find_batch(&conversions.db, original).await?;
            return Ok((
                BatchView {
                    id: original,
                    conversions: rows.into_iter().map(Into::into).collect(),
                },
                false,
            ));
        }
    }
    // Quotes are locked and checked in the transaction, so a single-use quote cannot also be
    // taken by a concurrent request (or twice in this batch).
    let quote_ids: Vec<Uuid> = checked
        .iter()
        .flatten()
        .filter_map(|c| c.quote_id)
        .collect();
    let mut claimed = quotes::claim(&mut tx, partner, &quote_ids, now).await?;
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in checked.into_iter().enumerate() {
        let Some(item) = item else { continue };
        let source: RateSource = match (item.live, item.quote_id) {
            (Some(quote), _) => quote.into(),
            (None, Some(quote_id)) => {
                match claimed.take(quote_id, item.from, item.to, item.amount.value()) {
                    Ok(locked) => locked.into(),
                    Err(e) => {
                        let (field, message) = item_quote_error(quote_id, e);
                        errors.push(ItemError {
                            index,
                            field,
                            message,
                        });
                        continue;
                    }
                }
            }
            (None, None) => return Err(anyhow::anyhow!("no rate source for a batch item").into()),
        };
        rows.push(new_row(
            conversions,
            Uuid::now_v7(),
            partner,
            item.from,
            item.to,
            &item.amount,
            item.minor_units,
            source,
            now,
        ));
    }
    if !errors.is_empty() {
        tx.rollback().await?;
        errors.sort_by_key(|e| e.index);
        return Err(ConversionError::InvalidItems {
            count: items.len(),
            errors,
        });
    }
    claimed.record_use(&mut tx).await?;
    let finalizes_at = rows.first().map_or(now, |r| r.finalizes_at);
    store::insert_batch(&mut tx, batch_id, partner, now, finalizes_at, &rows).await?;
    let conversions: Vec<ConversionView> = rows.into_iter().map(Into::into).collect();
    crate::webhooks::outbox::record(
        &mut tx,
        crate::webhooks::EventType::ConversionCreated,
        now,
        conversions.iter().map(|c| (partner, c)),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(batch_id = %batch_id, conversions = conversions.len(), "conversion batch created");
    Ok((
        BatchView {
            id: batch_id,
            conversions,
        },
        true,
    ))
}

fn item_quote_error(quote_id: Uuid, e: quotes::QuoteUseError) -> (&'static str, String) {
    match quote_use_error(quote_id, e) {
        ConversionError::Invalid { field, message } => (field, message),
        other => ("quote_id", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_differing_in_any_item_hash_differently() {
        let item = |amount| BatchItem {
            from: Some("EUR"),
            to: Some("USD"),
            amount: Some(amount),
            quote_id: None,
        };
        let a = batch_hash(&[item("1.00"), item("2.00")]);
        assert_eq!(a, batch_hash(&[item("1.00"), item("2.00")]));
        assert_ne!(a, batch_hash(&[item("2.00"), item("1.00")]));
        assert_ne!(a, batch_hash(&[item("1.00")]));
        // Field boundaries count: "EU"+"RUSD" is not "EUR"+"USD".
        let shifted = BatchItem {
            from: Some("EU"),
            to: Some("RUSD"),
            amount: Some("1.00"),
            quote_id: None,
        };
        assert_ne!(batch_hash(&[item("1.00")]), batch_hash(&[shifted]));
    }
}

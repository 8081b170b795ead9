//! Batch conversions: up to [`MAX_BATCH_ITEMS`] conversions in one request, all or nothing.
//! Every item is checked before anything is stored, and every bad item is reported (by index
//! and field); a valid batch is stored in one transaction with a fixed number of statements
//! (the conversions go in as arrays, not one `INSERT` each).

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Conversions;
use super::create::{PricedAmount, RateSource, hash_conversion, new_row, quote_use_error};
use super::domain::{self, ConversionError, ConversionView, ItemError};
use super::store;
use crate::auth::PartnerId;
use crate::currencies::CurrencyCode;
use crate::error::ApiError;
use crate::idempotency::{Claim, IdempotencyKey, RequestHash, Scope};
use crate::money::RequestedAmount;
use crate::quotes::service as quotes;
use crate::rates::RatesError;
use crate::rates::pricing::{Checked, PriceRequest, Priced, Pricer, Purpose};

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

/// A stored batch: its conversions in request order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchView {
    pub id: Uuid,
    pub conversions: Vec<ConversionView>,
}

/// An item that passed every step of the pricing pipeline that needs no lock.
enum CheckedItem {
    /// Priced at the rate in force.
    Live(Priced),
    /// Checked (pair and amount); the rate comes from the quote, taken in the transaction.
    OnQuote { quote_id: Uuid, checked: Checked },
}

/// An item's fault, as (field, problem): the index is added by the caller.
struct ItemFault {
    field: String,
    message: String,
    problem_type: String,
}

impl ItemFault {
    /// The problem `error` makes on its own, attributed to its field (or to `field` when the
    /// problem names none).
    fn of(error: ApiError, field: &str) -> Self {
        let problem = error.problem();
        let (field, message) = match problem.errors.into_iter().next() {
            Some(f) => (f.field, f.message),
            None => (field.to_owned(), problem.detail),
        };
        Self {
            field,
            message,
            problem_type: problem.problem_type,
        }
    }

    fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::of(ApiError::validation(field, message), field)
    }

    fn at(self, index: usize) -> ItemError {
        ItemError {
            index,
            field: self.field,
            message: self.message,
            problem_type: self.problem_type,
        }
    }
}

/// A pricing error of one item, or of the whole batch when it is not about the item (a
/// database that does not answer) or passes with time (a rate the sources do not agree on:
/// the batch is retried whole after `Retry-After`, as a single conversion would be).
fn pricing_fault(from: CurrencyCode, e: RatesError) -> Result<ItemFault, ConversionError> {
    let field = match &e {
        RatesError::Unexpected(_) | RatesError::RateUnavailable { .. } => return Err(e.into()),
        RatesError::NotQuoted(code) if *code == from => "from",
        _ => "to",
    };
    Ok(ItemFault::of(e.into(), field))
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, ItemFault> {
    value.ok_or_else(|| ItemFault::validation(field, "is required"))
}

fn currency(field: &'static str, value: Option<&str>) -> Result<CurrencyCode, ItemFault> {
    CurrencyCode::parse(required(field, value)?)
        .map_err(|e| ItemFault::validation(field, e.to_string()))
}

/// The parsed request of one item (what its idempotency hash remembers).
struct ParsedItem {
    from: CurrencyCode,
    to: CurrencyCode,
    amount: RequestedAmount,
    quote_id: Option<Uuid>,
}

/// Reads an item's fields as a single request reads them (items arrive as text so that every
/// bad item is listed).
fn parse_item(item: &BatchItem<'_>) -> Result<ParsedItem, ItemFault> {
    let from = currency("from", item.from)?;
    let to = currency("to", item.to)?;
    let amount = RequestedAmount::parse(required("amount", item.amount)?)
        .map_err(|e| ItemFault::validation("amount", e.to_string()))?;
    let quote_id = item
        .quote_id
        .map(|raw| {
            Uuid::parse_str(raw).map_err(|_| ItemFault::validation("quote_id", "no such quote"))
        })
        .transpose()?;
    Ok(ParsedItem {
        from,
        to,
        amount,
        quote_id,
    })
}

/// One item through the pricing pipeline (every step for an item at the rate in force; the
/// pair and the amount for an item on a quote).
async fn check_item(
    pricer: &mut Pricer<'_>,
    item: &ParsedItem,
) -> Result<Result<CheckedItem, ItemFault>, ConversionError> {
    let req = PriceRequest {
        from: item.from,
        to: item.to,
        amount: Some(&item.amount),
        at: None,
    };
    let outcome = match item.quote_id {
        Some(quote_id) => pricer
            .check(req)
            .await
            .map(|checked| CheckedItem::OnQuote { quote_id, checked }),
        None => pricer.price(req).await.map(CheckedItem::Live),
    };
    match outcome {
        Ok(checked) => Ok(Ok(checked)),
        Err(e) => pricing_fault(item.from, e).map(Err),
    }
}

/// What an `Idempotency-Key` remembers of a batch: every item as parsed, in order, written as a
/// single conversion writes its request (so `"100.0"` and `"100.00"` are the same batch, as they
/// are the same conversion). `None` when an item does not parse: such a batch is refused before
/// its key is looked at, as a single conversion whose body does not parse is.
fn batch_hash(parsed: &[Result<ParsedItem, ItemFault>]) -> Option<Vec<u8>> {
    parsed
        .iter()
        .try_fold(RequestHash::new(), |hash, item| {
            let item = item.as_ref().ok()?;
            Some(hash_conversion(
                hash,
                item.from,
                item.to,
                item.amount.value(),
                item.quote_id,
            ))
        })
        .map(RequestHash::finish)
}

/// Converts every item or none. Invalid items → [`ConversionError::InvalidItems`] listing each
/// one and nothing stored. With an `Idempotency-Key`, the same key and items return the
/// original batch (`created = false`), even when an item could not be priced now; a batch with
/// an item that does not parse is refused without looking at the key.
#[tracing::instrument(skip_all, fields(partner_id = %partner, items = items.len()))]
pub async fn create(
    conversions: &Conversions,
    partner: PartnerId,
    items: &[BatchItem<'_>],
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(BatchView, bool), ConversionError> {
    if items.is_empty() {
        return Err(domain::invalid(
            "items",
            "must list at least one conversion",
        ));
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(domain::invalid(
            "items",
            format!("at most {MAX_BATCH_ITEMS} conversions per batch"),
        ));
    }
    let parsed: Vec<Result<ParsedItem, ItemFault>> = items.iter().map(parse_item).collect();
    let mut pricer = Pricer::new(&conversions.rates, Purpose::BatchItem).for_partner(Some(partner));
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(items.len());
    for (index, item) in parsed.iter().enumerate() {
        let outcome = match item {
            Ok(item) => check_item(&mut pricer, item).await?,
            Err(fault) => Err(ItemFault {
                field: fault.field.clone(),
                message: fault.message.clone(),
                problem_type: fault.problem_type.clone(),
            }),
        };
        match outcome {
            Ok(c) => checked.push(Some(c)),
            Err(fault) => {
                errors.push(fault.at(index));
                checked.push(None);
            }
        }
    }

    // PostgreSQL keeps microseconds: the response and the webhooks show what a later read shows.
    let now: DateTime<Utc> = conversions.clock.now().trunc_subsecs(6);
    let batch_id = Uuid::now_v7();
    let mut tx = conversions.db.begin().await?;
    if let Some((key, hash)) = idempotency_key.zip(batch_hash(&parsed)) {
        let claim = Claim {
            scope: Scope::Batch,
            partner_id: partner.as_uuid(),
            key,
            request_hash: &hash,
            resource_id: batch_id,
        };
        let claimed = conversions.keys.claim(&mut tx, claim, now).await?;
        if let Some(original) = claimed.replay()? {
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
        .filter_map(|c| match c {
            CheckedItem::OnQuote { quote_id, .. } => Some(*quote_id),
            CheckedItem::Live(_) => None,
        })
        .collect();
    let mut claimed = quotes::claim(&mut tx, partner, &quote_ids, now).await?;
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in checked.into_iter().enumerate() {
        let Some(item) = item else { continue };
        let (priced, source) = match item {
            CheckedItem::Live(priced) => (
                PricedAmount::of(&priced)?,
                RateSource::from(priced.reference),
            ),
            CheckedItem::OnQuote { quote_id, checked } => {
                let Some(amount) = checked.amount.as_ref() else {
                    return Err(anyhow::anyhow!("a batch item without an amount").into());
                };
                let taken = claimed
                    .take(quote_id, checked.from.code, checked.to.code, amount.value())
                    .map_err(|e| ItemFault::of(quote_use_error(quote_id, e).into(), "quote_id"))
                    .and_then(|locked| {
                        PricedAmount::on_lock(&checked, &locked)
                            .map(|priced| (priced, RateSource::from(locked)))
                            .map_err(|e| ItemFault::of(e.into(), "amount"))
                    });
                match taken {
                    Ok(taken) => taken,
                    Err(fault) => {
                        errors.push(fault.at(index));
                        continue;
                    }
                }
            }
        };
        rows.push(new_row(
            conversions,
            Uuid::now_v7(),
            partner,
            priced,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(items: &[BatchItem<'_>]) -> Option<Vec<u8>> {
        let parsed: Vec<_> = items.iter().map(parse_item).collect();
        batch_hash(&parsed)
    }

    #[test]
    fn batches_differing_in_any_item_hash_differently() {
        let item = |amount| BatchItem {
            from: Some("EUR"),
            to: Some("USD"),
            amount: Some(amount),
            quote_id: None,
        };
        let a = hash(&[item("1.00"), item("2.00")]);
        assert_eq!(a, hash(&[item("1.00"), item("2.00")]));
        assert_ne!(a, hash(&[item("2.00"), item("1.00")]));
        assert_ne!(a, hash(&[item("1.00")]));
        // An item that does not parse leaves nothing to remember.
        assert_eq!(hash(&[item("1.00"), item("1.x")]), None);
    }

    #[test]
    fn the_same_amount_written_differently_is_the_same_batch() {
        let item = |amount, from| BatchItem {
            from: Some(from),
            to: Some("USD"),
            amount: Some(amount),
            quote_id: None,
        };
        assert_eq!(
            hash(&[item("100.0", "eur")]),
            hash(&[item("100.00", "EUR")])
        );
    }
}

//! Quote use cases: lock a rate, read a quote, and let a conversion claim quotes inside its
//! transaction.

use std::collections::{HashMap, HashSet};

use bigdecimal::BigDecimal;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Quotes;
use super::domain::{Lock, QuoteStatus};
use super::store::{self, QuoteRow};
use crate::auth::PartnerId;
use crate::currencies::CurrencyCode;
use crate::error::ApiError;
use crate::idempotency::{Claim, IdempotencyKey, RequestHash, Scope};
use crate::money::{self, Rate, RequestedAmount};
use crate::rates::RatesError;
use crate::rates::pricing::{PriceRequest, Pricer, Purpose};

#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The pair or amount cannot be priced (currency, rates, amount, stale rate): the same
    /// errors as a conversion's, from the one pricing path.
    #[error(transparent)]
    Pricing(#[from] RatesError),
    #[error("no such quote")]
    NotFound,
    #[error(transparent)]
    IdempotencyKeyReused(#[from] crate::idempotency::KeyReused),
    /// The partner holds as many open rate locks (or as much notional) as it may.
    #[error("{detail}")]
    TooManyOpenLocks {
        detail: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QuoteError {
    fn from(e: sqlx::Error) -> Self {
        QuoteError::Unexpected(e.into())
    }
}

impl From<QuoteError> for ApiError {
    fn from(e: QuoteError) -> Self {
        match e {
            QuoteError::Invalid { field, message } => ApiError::validation(field, message),
            QuoteError::Pricing(e) => e.into(),
            QuoteError::NotFound => ApiError::NotFound("no such quote".into()),
            QuoteError::IdempotencyKeyReused(e) => e.into(),
            QuoteError::TooManyOpenLocks {
                detail,
                retry_after_secs,
            } => ApiError::TooManyRequestsAs {
                slug: "too-many-open-locks",
                detail,
                retry_after_secs,
            },
            QuoteError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

/// How the quoted rate was made: the reference rate and the spread taken off it (the partner's
/// markup and the lock's own spread).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateDetails {
    /// The provider's rate (units of `to` per one `from`), before the spread.
    #[schema(value_type = String, example = "1.1")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub reference_rate: BigDecimal,
    /// Basis points taken off the reference rate: `rate = reference_rate ×
    /// (1 − spread_bps / 10000)`, so the partner gets fewer units of `to`. Always
    /// `markup_bps + lock_bps`.
    pub spread_bps: u32,
    /// The partner's markup, in basis points, when the quote was made.
    pub markup_bps: u32,
    /// The lock's own spread (`quotes.spread_bps.<lock>`), in basis points.
    pub lock_bps: u32,
    /// The rate the partner gets.
    #[schema(value_type = String, example = "1.09945")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub rate: BigDecimal,
    /// `amount × reference_rate` rounded toward zero to the target's minor units, less the
    /// result: what the spread comes to (`null` without an amount).
    #[schema(value_type = Option<String>, example = "0.06")]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub markup_amount: Option<BigDecimal>,
    /// Provider of the reference rate.
    pub provider: String,
    /// The sources whose values made the reference rate: with `rates.sources`, those whose
    /// consensus it was (both sides of a cross rate); otherwise `[provider]`. A conversion on
    /// the quote records these.
    #[schema(example = json!(["ecb", "frankfurter", "oxr"]))]
    pub sources: Vec<String>,
    /// The provider's timestamp of the reference rate.
    pub reference_as_of: DateTime<Utc>,
    /// Whether the reference rate was older than `rates.max_age_secs` when locked (only where
    /// stale rates are allowed).
    pub stale_rate: bool,
}

/// A quote as the API shows it. Decimals are strings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuoteView {
    pub id: Uuid,
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    /// The fixed amount in `from`, when the quote was asked for one.
    #[schema(value_type = Option<String>, example = "100.00")]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub amount: Option<BigDecimal>,
    /// The rate a conversion on this quote gets: units of `to` per one `from`.
    #[schema(value_type = String, example = "1.09945")]
    #[serde(serialize_with = "money::serialize_decimal")]
    pub rate: BigDecimal,
    /// `amount × rate`, rounded toward zero to the target's minor units, when an amount was
    /// given.
    #[schema(value_type = Option<String>, example = "109.95")]
    #[serde(serialize_with = "money::serialize_opt_decimal")]
    pub result: Option<BigDecimal>,
    /// The sources whose values made the reference rate (as `rate_details.sources`): the
    /// conversion on this quote records the same.
    #[schema(example = json!(["ecb", "frankfurter", "oxr"]))]
    pub rate_sources: Vec<String>,
    pub rate_details: RateDetails,
    pub lock: Lock,
    /// Now: `active`, `expired` or `used`.
    pub status: QuoteStatus,
    pub created_at: DateTime<Utc>,
    /// Conversions on this quote are accepted strictly before this instant.
    pub expires_at: DateTime<Utc>,
    /// When a fixed-amount quote was converted on.
    pub used_at: Option<DateTime<Utc>>,
}

impl QuoteView {
    fn new(r: QuoteRow, now: DateTime<Utc>) -> Self {
        Self {
            id: r.id,
            from: r.from_currency,
            to: r.to_currency,
            amount: r
                .amount
                .as_ref()
                .map(|a| money::round_to_minor_units(a, r.from_minor_units)),
            rate: money::normalized(&r.rate),
            result: r
                .result
                .as_ref()
                .map(|a| money::round_to_minor_units(a, r.to_minor_units)),
            rate_details: RateDetails {
                reference_rate: money::normalized(&r.reference_rate),
                spread_bps: u32::try_from(r.spread_bps).unwrap_or_default(),
                markup_bps: u32::try_from(r.markup_bps).unwrap_or_default(),
                lock_bps: u32::try_from(r.spread_bps - r.markup_bps).unwrap_or_default(),
                rate: money::normalized(&r.rate),
                markup_amount: r
                    .amount
                    .as_ref()
                    .zip(r.result.as_ref())
                    .and_then(|(a, res)| {
                        Rate::new(r.reference_rate.clone()).ok().map(|reference| {
                            money::markup_amount(a, &reference, res, r.to_minor_units)
                        })
                    }),
                provider: r.rate_provider,
                sources: r.rate_sources.clone(),
                reference_as_of: r.reference_as_of,
                stale_rate: r.stale_rate,
            },
            rate_sources: r.rate_sources,
            lock: r.lock,
            status: QuoteStatus::at(now, r.expires_at, r.used_at),
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        }
    }
}

/// What a partner asks for.
pub struct QuoteRequest<'a> {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub amount: Option<&'a RequestedAmount>,
    pub lock: Lock,
}

/// Prices the pair on the pricing pipeline (the reference rate less the lock's spread) and
/// stores the quote. A redeemable lock is for a fixed amount, used once, and counts against the
/// partner's cap on open locks (`quotes.max_open_locks`, `quotes.max_open_notional`): the
/// count, the check and the insert are one transaction, serialised per partner, so parallel
/// requests cannot pass the cap together.
///
/// With an `Idempotency-Key`, the same key and request return the original quote as it is now
/// (`created = false`), before the cap is looked at; the same key with another request fails.
#[tracing::instrument(skip(quotes, req, idempotency_key), fields(partner_id = %partner, from = %req.from, to = %req.to, lock = req.lock.as_str()))]
pub async fn create(
    quotes: &Quotes,
    partner: PartnerId,
    req: QuoteRequest<'_>,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<(QuoteView, bool), QuoteError> {
    let lock = req.lock;
    let redeemable = lock != Lock::None;
    let purpose = Purpose::RateLock {
        lock_bps: lock.spread_bps(&quotes.settings.spread_bps),
        redeemable,
    };
    let priced = Pricer::new(&quotes.rates, purpose)
        .for_partner(Some(partner))
        .price(PriceRequest {
            from: req.from,
            to: req.to,
            amount: req.amount,
            at: None,
        })
        .await?;
    let notional = match (&priced.amount, redeemable) {
        (Some(amount), true) => Some(notional(quotes, priced.from, amount.value()).await?),
        _ => None,
    };
    // PostgreSQL keeps microseconds: answer with what a later read returns.
    let now = quotes.clock.now().trunc_subsecs(6);
    let row = QuoteRow {
        id: Uuid::now_v7(),
        partner_id: partner.as_uuid(),
        from_currency: priced.from,
        to_currency: priced.to,
        amount: priced.amount.as_ref().map(|a| a.value().clone()),
        result: priced.result.clone(),
        from_minor_units: priced.from_minor_units,
        to_minor_units: priced.to_minor_units,
        reference_rate: priced.reference.rate.value().clone(),
        spread_bps: i32::try_from(priced.spread_bps).unwrap_or(i32::MAX),
        markup_bps: i32::try_from(priced.markup_bps).unwrap_or(i32::MAX),
        rate: priced.rate.value().clone(),
        rate_provider: priced.reference.provider.clone(),
        reference_as_of: priced.reference.as_of,
        from_quote_id: priced.reference.from_quote_id,
        to_quote_id: priced.reference.to_quote_id,
        stale_rate: priced.reference.stale,
        lock,
        created_at: now,
        expires_at: lock.expires_at(now),
        used_at: None,
        rate_sources: priced.reference.rate_sources(),
    };
    let mut tx = quotes.db.begin().await?;
    if let Some(key) = idempotency_key {
        let hash = RequestHash::new()
            .text(req.from.as_str())
            .text(req.to.as_str())
            .optional(req.amount.map(RequestedAmount::value), RequestHash::decimal)
            .text(lock.as_str())
            .finish();
        let claim = Claim {
            scope: Scope::Quote,
            partner_id: partner.as_uuid(),
            key,
            request_hash: &hash,
            resource_id: row.id,
        };
        if let Some(original) = quotes.keys.claim(&mut tx, claim, now).await?.replay()? {
            tx.rollback().await?;
            let original = store::find(&quotes.db, original, partner)
                .await?
                .ok_or(QuoteError::NotFound)?;
            return Ok((QuoteView::new(original, quotes.clock.now()), false));
        }
    }
    if let Some(notional) = &notional {
        store::lock_partner_locks(&mut tx, partner).await?;
        let open = store::open_locks(&mut tx, partner, now).await?;
        let settings = &quotes.settings;
        let over_count = open.count >= i64::from(settings.max_open_locks);
        let over_notional = &open.notional + notional > settings.max_open_notional;
        if over_count || over_notional {
            let retry_after_secs = open
                .first_expiry
                .map(|t| (t - now).num_seconds().max(1))
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(1);
            let detail = if over_count {
                format!(
                    "{} rate locks are open, the most one partner may hold; one frees up when a lock is used or expires",
                    open.count
                )
            } else {
                format!(
                    "open rate locks would be worth {} {}, above the {} {} one partner may hold",
                    money::round_to_minor_units(&(&open.notional + notional), 2).to_plain_string(),
                    settings.notional_currency,
                    settings.max_open_notional.to_plain_string(),
                    settings.notional_currency,
                )
            };
            return Err(QuoteError::TooManyOpenLocks {
                detail,
                retry_after_secs,
            });
        }
    }
    store::insert(&mut tx, &row, notional.as_ref()).await?;
    tx.commit().await?;
    tracing::info!(quote_id = %row.id, spread_bps = priced.spread_bps, "quote created");
    Ok((QuoteView::new(row, now), true))
}

/// What `amount` of `from` is worth in `quotes.notional_currency` at the reference rate in
/// force: the measure of a lock's size for the cap on open locks.
async fn notional(
    quotes: &Quotes,
    from: CurrencyCode,
    amount: &BigDecimal,
) -> Result<BigDecimal, QuoteError> {
    let unit = quotes.settings.notional_currency;
    if from == unit {
        return Ok(amount.clone());
    }
    let rate = crate::rates::service::quote(&quotes.rates, from, unit, None).await?;
    Ok(amount * rate.rate.value())
}

/// A partner's own quote; another partner's is "not found", never "forbidden".
pub async fn get(quotes: &Quotes, id: Uuid, partner: PartnerId) -> Result<QuoteView, QuoteError> {
    let row = store::find(&quotes.db, id, partner)
        .await?
        .ok_or(QuoteError::NotFound)?;
    Ok(QuoteView::new(row, quotes.clock.now()))
}

/// Quotes whose expiry is recorded per statement; small batches keep row locks short.
pub const EXPIRE_BATCH: i64 = 500;

/// Records the expiry of every locked quote whose lock has ended, in batches, each with its
/// `quote.expired` events (to partners subscribed to them) in the same transaction. Idempotent:
/// a quote's expiry is recorded once.
pub async fn record_expiries(quotes: &Quotes) -> anyhow::Result<u64> {
    let now = quotes.clock.now();
    let mut total = 0;
    loop {
        let mut tx = quotes.db.begin().await?;
        let rows = store::record_expired(&mut tx, now, EXPIRE_BATCH).await?;
        let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let expired: Vec<(Uuid, QuoteView)> = rows
            .into_iter()
            .map(|r| (r.partner_id, QuoteView::new(r, now)))
            .collect();
        crate::webhooks::outbox::record(
            &mut tx,
            crate::webhooks::EventType::QuoteExpired,
            now,
            expired
                .iter()
                .map(|(partner, view)| (PartnerId::from_uuid(*partner), view)),
        )
        .await?;
        tx.commit().await?;
        total += n;
        if n < u64::try_from(EXPIRE_BATCH).unwrap_or(u64::MAX) {
            break;
        }
    }
    Ok(total)
}

/// Quotes holding a rate right now (the monitor's "quotes locked").
pub async fn active_locks(
    db: &sqlx::PgPool,
    clock: &crate::clock::Clock,
) -> Result<i64, sqlx::Error> {
    store::count_active(db, clock.now()).await
}

/// Why a conversion cannot use a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteUseError {
    /// Missing, or another partner's (indistinguishable on purpose).
    NotFound,
    /// Past its lock (or indicative, never locked).
    Expired { expires_at: DateTime<Utc> },
    /// A fixed-amount quote already converted on.
    Used,
    /// A lock without an amount (made before locks required one): indicative only, since a
    /// rate held for any amount, any number of times, is a free option.
    NoAmount,
    /// The conversion is not what was quoted (`from`, `to` or `amount`).
    Mismatch {
        field: &'static str,
        message: String,
    },
}

/// The rate a conversion gets from a quote, and where it came from.
#[derive(Debug, Clone)]
pub struct LockedRate {
    pub quote_id: Uuid,
    pub rate: Rate,
    /// The reference rate the lock's rate was made from.
    pub reference_rate: Rate,
    /// The partner's markup and the lock's spread in it, in basis points.
    pub markup_bps: u32,
    pub lock_bps: u32,
    pub provider: String,
    /// The sources the quote's reference rate came from.
    pub sources: Vec<String>,
    pub reference_as_of: DateTime<Utc>,
    pub from_quote_id: Option<i64>,
    pub to_quote_id: Option<i64>,
    pub stale_rate: bool,
}

/// Quotes a converting transaction has locked (row locks held until it ends).
pub struct ClaimedQuotes {
    rows: HashMap<Uuid, QuoteRow>,
    /// Fixed-amount quotes taken by this transaction.
    taken: HashSet<Uuid>,
    now: DateTime<Utc>,
}

/// Locks the partner's quotes among `ids` for the rest of the transaction, so concurrent
/// conversions on a single-use quote are serialised and only one of them gets it.
pub async fn claim(
    conn: &mut PgConnection,
    partner: PartnerId,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<ClaimedQuotes, sqlx::Error> {
    let mut unique: Vec<Uuid> = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let rows = if unique.is_empty() {
        Vec::new()
    } else {
        store::lock_for_use(conn, &unique, partner).await?
    };
    Ok(ClaimedQuotes {
        rows: rows.into_iter().map(|r| (r.id, r)).collect(),
        taken: HashSet::new(),
        now,
    })
}

impl ClaimedQuotes {
    /// Checks that quote `id` covers converting exactly `amount` from `from` to `to` now, and
    /// takes it: a lock is used once.
    pub fn take(
        &mut self,
        id: Uuid,
        from: CurrencyCode,
        to: CurrencyCode,
        amount: &BigDecimal,
    ) -> Result<LockedRate, QuoteUseError> {
        let q = self.rows.get(&id).ok_or(QuoteUseError::NotFound)?;
        if q.used_at.is_some() || self.taken.contains(&id) {
            return Err(QuoteUseError::Used);
        }
        if self.now >= q.expires_at {
            return Err(QuoteUseError::Expired {
                expires_at: q.expires_at,
            });
        }
        for (field, asked, quoted) in [("from", from, q.from_currency), ("to", to, q.to_currency)] {
            if asked != quoted {
                return Err(QuoteUseError::Mismatch {
                    field,
                    message: format!("the quote is for {} → {}", q.from_currency, q.to_currency),
                });
            }
        }
        let fixed = q.amount.as_ref().ok_or(QuoteUseError::NoAmount)?;
        if fixed != amount {
            return Err(QuoteUseError::Mismatch {
                field: "amount",
                message: format!(
                    "the quote is for exactly {}",
                    money::round_to_minor_units(fixed, q.from_minor_units).to_plain_string()
                ),
            });
        }
        // Every redeemable lock is single use.
        self.taken.insert(id);
        // The schema keeps a stored rate positive.
        let rate = Rate::new(q.rate.clone()).map_err(|_| QuoteUseError::NotFound)?;
        let reference_rate =
            Rate::new(q.reference_rate.clone()).map_err(|_| QuoteUseError::NotFound)?;
        Ok(LockedRate {
            quote_id: id,
            rate,
            reference_rate,
            markup_bps: u32::try_from(q.markup_bps).unwrap_or_default(),
            lock_bps: u32::try_from(q.spread_bps - q.markup_bps).unwrap_or_default(),
            provider: q.rate_provider.clone(),
            sources: q.rate_sources.clone(),
            reference_as_of: q.reference_as_of,
            from_quote_id: q.from_quote_id,
            to_quote_id: q.to_quote_id,
            stale_rate: q.stale_rate,
        })
    }

    /// Records the single-use quotes taken, in the same transaction as the conversions.
    pub async fn record_use(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.taken.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = self.taken.into_iter().collect();
        store::mark_used(conn, &ids, self.now).await?;
        Ok(())
    }
}

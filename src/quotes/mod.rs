//! Rate locks (quotes): a partner asks for the rate of a currency pair, optionally for a fixed
//! amount, and chooses how long it is held (`none`, `five_minutes`, `hour`, `day`). Each lock
//! costs a spread in basis points (`quotes.spread_bps.<lock>`) taken off the reference rate and
//! shown beside it. Owns the `quotes` table. A quote is priced as a conversion is, on the one
//! pricing path [`crate::rates::pricing`] (the same checks, the same errors, the same
//! stale-rate policy); converting on a quote is the conversions module's job, which asks this
//! module to [`service::claim`] the quote inside its transaction. This module imports nothing
//! from conversions. `POST /quotes` is idempotent with an `Idempotency-Key`
//! ([`crate::idempotency`], scope `quote`).

pub mod domain;
pub mod jobs;
pub mod routes;
pub mod service;
pub mod store;

pub use domain::Lock;
pub use service::{QuoteError, QuoteView};

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::idempotency::Keys;
use crate::rates::Rates;
use crate::settings::QuoteSettings;

/// What the quote use cases run with: the pool, the clock, `quotes.*` (the spreads and the caps
/// on open locks) and the rates handle to price through (the one pricing pipeline, with the
/// rules of `conversions.*`), so that a quote refuses what a conversion refuses.
/// Cheap to clone; routes get it as `web::Data<Quotes>`, the `expire_quotes` job as its context.
#[derive(Clone)]
pub struct Quotes {
    /// PostgreSQL, where quotes are stored.
    pub db: PgPool,
    /// Now, for creation and expiry.
    pub clock: Clock,
    /// `quotes.*`: the spread per lock.
    pub settings: Arc<QuoteSettings>,
    /// Pricing, as for a conversion (with its rules: amounts, stale rates).
    pub rates: Rates,
    /// How long an `Idempotency-Key` is remembered.
    pub keys: Keys,
}

impl Quotes {
    /// The quotes handle pricing through `rates` (whose pool, clock and pricing rules it
    /// shares), remembering idempotency keys as long as `keys` says.
    pub fn new(rates: &Rates, settings: QuoteSettings, keys: Keys) -> Self {
        Self {
            keys,
            db: rates.db.clone(),
            clock: rates.clock.clone(),
            settings: Arc::new(settings),
            rates: rates.clone(),
        }
    }
}

//! Rate locks (quotes): a partner asks for the rate of a currency pair, optionally for a fixed
//! amount, and chooses how long it is held (`none`, `five_minutes`, `hour`, `day`). Each lock
//! costs a spread in basis points (`quotes.spread_bps.<lock>`) taken off the reference rate and
//! shown beside it. Owns the `quotes` table. A quote is priced as a conversion is
//! ([`crate::conversions::pricing::price_pair`], on the one pricing path [`crate::rates::pricing`]);
//! converting on a quote is the conversions
//! module's job, which asks this module to [`service::claim`] the quote inside its transaction.

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
use crate::conversions::Conversions;
use crate::settings::QuoteSettings;

/// What the quote use cases run with: the pool, the clock, `quotes.*` (the spreads) and the
/// conversions handle, whose pricing (currencies, rate, amount, stale-rate policy) a quote
/// shares. Cheap to clone; routes get it as `web::Data<Quotes>`, the `expire_quotes` job as its
/// context.
#[derive(Clone)]
pub struct Quotes {
    /// PostgreSQL, where quotes are stored.
    pub db: PgPool,
    /// Now, for creation and expiry.
    pub clock: Clock,
    /// `quotes.*`: the spread per lock.
    pub settings: Arc<QuoteSettings>,
    /// Pricing, as for a conversion.
    pub conversions: Conversions,
}

impl Quotes {
    /// The quotes handle pricing through `conversions` (whose pool and clock it shares).
    pub fn new(conversions: &Conversions, settings: QuoteSettings) -> Self {
        Self {
            db: conversions.db.clone(),
            clock: conversions.clock.clone(),
            settings: Arc::new(settings),
            conversions: conversions.clone(),
        }
    }
}

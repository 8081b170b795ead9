//! Rate locks (quotes): a partner asks for the rate of a currency pair, optionally for a fixed
//! amount, and chooses how long it is held (`none`, `five_minutes`, `hour`, `day`). Each lock
//! costs a spread in basis points (`quotes.spread_bps.<lock>`) taken off the reference rate and
//! shown beside it. Owns the `quotes` table. A quote is priced as a conversion is
//! ([`crate::conversions::service::price_pair`], on the one pricing path [`crate::rates::pricing`]);
//! converting on a quote is the conversions
//! module's job, which asks this module to [`service::claim`] the quote inside its transaction.

pub mod domain;
pub mod jobs;
pub mod routes;
pub mod service;
pub mod store;

pub use domain::Lock;
pub use service::{QuoteError, QuoteView};

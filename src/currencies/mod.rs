//! Currencies: the set the service supports (ISO 4217 plus explicit non-ISO ones), managed by
//! admins. Owns the `currencies` table; other modules ask through [`service`]. Deleting a
//! currency that history references retires it instead, so nothing history needs is lost.

pub mod catalogue;
pub mod events;
pub mod routes;
pub mod service;
pub mod store;

// The code type is part of the shared core (settings hold one); `currencies::code` keeps its
// old path for the capabilities.
pub use crate::currency_code as code;
pub use code::{CurrencyCode, CurrencyCodes, InvalidCurrencyCode};
pub use events::{CurrencyChange, CurrencyEvents};
pub use service::{Currency, CurrencyError};

use sqlx::PgPool;

use crate::clock::Clock;

/// What the currency routes use: the pool, the clock, and the listeners that hear of changes
/// (rates, which drops its cache or asks for a fetch). Registered by `startup` as `web::Data`.
#[derive(Clone)]
pub struct Currencies {
    pub db: PgPool,
    pub clock: Clock,
    pub events: CurrencyEvents,
}

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

//! Currencies: the set the service supports (ISO 4217 plus explicit non-ISO ones), managed by
//! admins. Owns the `currencies` table; retiring keeps history readable.

pub mod code;

pub use code::{CurrencyCode, InvalidCurrencyCode};

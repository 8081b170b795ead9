//! Conversions: what partners come for. A partner converts an amount at the rate in force; the
//! conversion is `temporary` for the holding period, then the `finalize_conversions` job makes it
//! `permanent`; a partner may cancel its own temporary conversion. Owns the `conversions` and
//! `conversion_idempotency_keys` tables; `history` reads them through [`store`].

pub mod jobs;
pub mod routes;
pub mod service;
pub mod store;

pub use service::{ConversionError, ConversionView, Status};

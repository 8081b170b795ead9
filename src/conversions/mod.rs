//! Conversions: what partners come for. A partner converts an amount at the rate in force; the
//! conversion is `temporary` for the holding period, then the `finalize_conversions` job makes it
//! `permanent`; a partner may cancel its own temporary conversion. A conversion may use a rate
//! lock's rate (`quote_id`, checked through [`crate::quotes`]), and up to 1,000 conversions may
//! be made all or nothing as a [`batch`]. Owns the `conversions`, `conversion_batches` and both
//! idempotency-key tables; `history` reads them through [`store`].

pub mod batch;
pub mod idempotency;
pub mod jobs;
pub mod routes;
pub mod service;
pub mod store;

pub use idempotency::IdempotencyKey;
pub use service::{ConversionError, ConversionView, Status};

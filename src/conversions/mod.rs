//! Conversions: what partners come for. A partner converts an amount at the rate in force; the
//! conversion is `temporary` for the holding period, then the `finalize_conversions` job makes it
//! `permanent`; a partner may cancel its own temporary conversion. A conversion may use a rate
//! lock's rate (`quote_id`, checked through [`crate::quotes`]), and up to 1,000 conversions may
//! be made all or nothing as a [`batch`]. Owns the `conversions` and `conversion_batches`
//! tables; `history` reads them through [`store::history`]. Idempotency keys are
//! [`crate::idempotency`]'s (scopes `conversion` and `batch`).
//!
//! - [`pricing`]: the checks and pricing a conversion or a quote starts with;
//! - [`create`]: converting one amount (at the rate in force or on a quote);
//! - [`group_commit`]: concurrent conversions at the rate in force written by one statement;
//! - [`service`]: the conversion as the API shows it, reading, cancelling, finalizing;
//! - [`partitions`]: the table's monthly partitions, created ahead and detached when old.

pub mod batch;
pub mod create;
pub mod domain;
pub mod group_commit;
pub mod jobs;
pub mod partitions;
pub mod routes;
pub mod service;
pub mod store;

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::idempotency::Keys;
use crate::rates::Rates;
use crate::replica::ReadPool;
use crate::settings::ConversionSettings;
use group_commit::{GroupCommit, Limits};

pub use domain::{ConversionError, ConversionView, Status};

/// What the conversion use cases run with: the pool, the clock, `conversions.*` and the rates
/// handle (pricing reads the latest rates from its cache and checks currencies through it).
/// Cheap to clone; routes get it as `web::Data<Conversions>`, the `finalize_conversions` job as
/// its context, and quotes and history hold it to price and to read.
#[derive(Clone)]
pub struct Conversions {
    /// PostgreSQL, the record of conversions and their idempotency keys.
    pub db: PgPool,
    /// Where history lists, exports, summaries and reports read: the replica when current.
    /// Never for a conversion's own reads (`GET /conversions/{id}` must find what the `POST`
    /// just wrote).
    pub reads: ReadPool,
    /// Now, for creation, holding periods and key expiry.
    pub clock: Clock,
    /// `conversions.*`: holding period, maximum amount, stale-rate policy, key TTL.
    pub settings: Arc<ConversionSettings>,
    /// The rates of this process.
    pub rates: Rates,
    /// How long an `Idempotency-Key` is remembered (`conversions.idempotency_ttl_secs`).
    pub keys: Keys,
    /// Writes conversions at the rate in force, grouped (`conversions.group_commit_*`). One per
    /// process: every clone of this handle feeds the same groups.
    pub commits: GroupCommit,
}

impl Conversions {
    /// The conversions handle over `rates` (whose pool and clock it shares).
    pub fn new(rates: &Rates, settings: ConversionSettings) -> Self {
        Self {
            commits: GroupCommit::new(rates.db.clone(), Limits::from_settings(&settings)),
            db: rates.db.clone(),
            reads: rates.reads.clone(),
            clock: rates.clock.clone(),
            keys: Keys::new(settings.idempotency_ttl_secs),
            settings: Arc::new(settings),
            rates: rates.clone(),
        }
    }
}

//! Partner pricing: the markup each partner pays below the reference rate, set by admins (a
//! default in basis points and per-pair overrides), with every change audited. Owns the
//! `partner_pricing`, `partner_pair_markups` and `partner_pricing_changes` tables. It does not
//! price anything: the one pricing pipeline (`crate::rates::pricing`) asks it for a partner's
//! [`MarkupSchedule`] and applies it; what a price's markup came to is stored with the price.

pub mod domain;
pub mod routes;
pub mod store;

pub use domain::{MarkupSchedule, MarkupsError};

use sqlx::PgPool;

use crate::auth::PartnerId;
use crate::clock::Clock;

/// What the markup use cases run with. Cheap to clone; routes get it as `web::Data<Markups>`.
#[derive(Clone)]
pub struct Markups {
    /// PostgreSQL, where schedules and their changes are kept.
    pub db: PgPool,
    /// Now, for the audit trail.
    pub clock: Clock,
    /// `pricing.default_markup_bps`: the markup of a partner without a schedule of its own.
    pub default_bps: u32,
    /// The largest markup an admin may set: a markup plus the dearest lock's spread must
    /// leave a positive rate.
    pub max_bps: u32,
}

/// The schedule a partner is priced with: its own, or the default from settings.
pub async fn schedule_of(
    db: &PgPool,
    default_bps: u32,
    partner: PartnerId,
) -> Result<MarkupSchedule, sqlx::Error> {
    Ok(store::find(db, partner)
        .await?
        .map(|stored| stored.schedule)
        .unwrap_or_else(|| MarkupSchedule::default_of(default_bps)))
}

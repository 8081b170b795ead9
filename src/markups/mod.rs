//! Partner pricing: the markup each partner pays below the reference rate, set by admins (a
//! default in basis points and per-pair overrides), with every change audited. Owns the
//! `partner_pricing`, `partner_pair_markups` and `partner_pricing_changes` tables. It does not
//! price anything: the one pricing pipeline (`crate::rates::pricing`) asks it for a partner's
//! [`MarkupSchedule`] and applies it; what a price's markup came to is stored with the price.

pub mod domain;
pub mod routes;
pub mod store;

pub use domain::{MarkupSchedule, MarkupsError};

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::PartnerId;
use crate::clock::Clock;
use crate::memo::Memo;
use crate::redis_client::Redis;

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
    /// The schedules prices are made with; told of every change made here.
    pub schedules: Schedules,
}

/// The schedules partners are priced with, memoised in this process (see [`crate::memo`]):
/// a price needs no database round trip for its markup. A change ([`Schedules::changed`],
/// after `PUT /partners/{id}/pricing` commits) is priced with at once on this instance and
/// within a second on every other.
#[derive(Clone)]
pub struct Schedules {
    db: PgPool,
    redis: Redis,
    default_bps: u32,
    memo: Arc<Memo<PartnerId, Arc<MarkupSchedule>>>,
}

impl std::fmt::Debug for Schedules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules")
            .field("default_bps", &self.default_bps)
            .finish_non_exhaustive()
    }
}

impl Schedules {
    /// An empty memo; `default_bps` is `pricing.default_markup_bps`.
    pub fn new(db: PgPool, redis: Redis, default_bps: u32) -> Self {
        Self {
            db,
            redis,
            default_bps,
            memo: Arc::new(Memo::new("markups")),
        }
    }

    /// The schedule a partner is priced with: its own, or the default from settings.
    pub async fn of(&self, partner: PartnerId) -> Result<Arc<MarkupSchedule>, sqlx::Error> {
        self.memo
            .get_or_load(&self.redis, partner, || async {
                Ok(Arc::new(
                    store::find(&self.db, partner)
                        .await?
                        .map(|stored| stored.schedule)
                        .unwrap_or_else(|| MarkupSchedule::default_of(self.default_bps)),
                ))
            })
            .await
    }

    /// A partner's schedule changed (call it after the commit).
    pub async fn changed(&self) {
        self.memo.changed(&self.redis).await;
    }
}

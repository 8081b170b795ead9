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

use std::sync::Arc;

use actix_web::web::Bytes;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::memo::Memo;
use crate::redis_client::Redis;

/// What the currency routes use: the pool, Redis (to tell other instances of a change), the
/// clock, the listeners that hear of changes (rates, which drops its cache or asks for a
/// fetch), and this process's memo of the list's answers. Registered by `startup` as
/// `web::Data`.
#[derive(Clone)]
pub struct Currencies {
    pub db: PgPool,
    pub redis: Redis,
    pub clock: Clock,
    pub events: CurrencyEvents,
    /// `GET /currencies` answers, serialised once, by `include_inactive` (see
    /// [`crate::memo`]): the list changes a few times a year and is read on every start of a
    /// partner's session.
    pub lists: Arc<Memo<bool, Bytes>>,
}

impl Currencies {
    /// The currencies handle of a process, with an empty memo.
    pub fn new(db: PgPool, redis: Redis, clock: Clock, events: CurrencyEvents) -> Self {
        Self {
            db,
            redis,
            clock,
            events,
            lists: Arc::new(Memo::new("currencies")),
        }
    }

    /// A currency was added, changed or removed (call it after the commit): every instance
    /// forgets the lists it memoised (this one at once, the others within a second), then this
    /// process's listeners hear of `change`, when it is one they care about.
    pub async fn changed(&self, change: Option<CurrencyChange>) {
        self.lists.changed(&self.redis).await;
        if let Some(change) = change {
            self.events.announce(change).await;
        }
    }
}

//! Announcements of changes to the set of currencies. Other capabilities that keep something
//! derived from currencies (the rates cache, the fetch list) subscribe at start-up; this module
//! never learns who listens, so it depends on none of them.
//!
//! Listeners run before the request that made the change answers, so a client that added a
//! currency finds the fresh fetch already requested.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::CurrencyCode;

/// What happened to a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrencyChange {
    /// A new usable currency.
    Added(CurrencyCode),
    /// A disabled or retired currency was enabled again.
    Enabled(CurrencyCode),
    /// Renamed or disabled.
    Changed(CurrencyCode),
    /// Deleted or retired.
    Removed(CurrencyCode),
}

/// Something that reacts to currency changes. A listener handles its own failures: the change
/// is already stored when it hears of it.
pub trait CurrencyListener: Send + Sync + 'static {
    /// Called once per change.
    fn currency_changed<'a>(&'a self, change: &'a CurrencyChange) -> BoxFuture<'a, ()>;
}

/// The listeners of this process, given to the currency routes as `web::Data`.
#[derive(Clone, Default)]
pub struct CurrencyEvents {
    listeners: Vec<Arc<dyn CurrencyListener>>,
}

impl CurrencyEvents {
    /// No listeners: changes are announced to nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listener.
    pub fn subscribe(&mut self, listener: Arc<dyn CurrencyListener>) -> &mut Self {
        self.listeners.push(listener);
        self
    }

    /// Tells every listener, in subscription order.
    pub async fn announce(&self, change: CurrencyChange) {
        for listener in &self.listeners {
            listener.currency_changed(&change).await;
        }
    }
}

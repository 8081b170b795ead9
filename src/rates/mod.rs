//! Exchange rates: where they come from and how they are read. This module owns the provider
//! side (which providers exist, how their payloads are parsed and validated, how they are
//! fetched with retries, circuit breakers and failover) and the ECB CSV files used to load
//! history; storing snapshots change-only ([`store`], [`service::fetch_and_store`],
//! [`import`]) and reading them back (latest from memory through [`cache`], as of an instant,
//! series, conversion quotes) over HTTP ([`routes`]).

// Everything public here is called from other modules; keep it documented.
#![warn(missing_docs)]

pub mod cache;
pub mod client;
pub mod ecb_csv;
pub mod import;
pub mod jobs;
pub mod provider;
pub mod routes;
pub mod series;
pub mod service;
pub mod store;
pub mod view;

use std::sync::Arc;

pub use service::{FetchReport, RateQuote, RatesError, fetch_and_store, quote};

/// Per-process rates machinery kept in [`crate::startup::AppState`]: the latest-rates cache and
/// the provider client (built once from settings, so its circuit breakers persist across
/// fetches).
#[derive(Debug, Default)]
pub struct RatesRuntime {
    /// The in-memory latest rates.
    pub cache: cache::LatestRatesCache,
    client: tokio::sync::OnceCell<Arc<client::RatesClient>>,
    /// Set once this process has said whether the provider answered its first fetch.
    first_fetch_reported: std::sync::atomic::AtomicBool,
}

impl RatesRuntime {
    /// The provider client, built from `rates.*` settings on first use.
    pub async fn client(
        &self,
        state: &crate::startup::AppState,
    ) -> anyhow::Result<Arc<client::RatesClient>> {
        self.client
            .get_or_try_init(|| async {
                client::RatesClient::from_settings(&state.settings.rates).map(Arc::new)
            })
            .await
            .cloned()
    }

    /// True the first time it is called in this process: the first fetch's outcome is worth a
    /// start-up summary line, later ones are routine.
    pub fn first_fetch(&self) -> bool {
        !self
            .first_fetch_reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }
}

/// A currency was disabled, retired or renamed: every instance drops its cached view of the
/// supported currencies and latest rates.
pub async fn currencies_changed(state: &crate::startup::AppState) {
    cache::announce_new_rates(state).await;
}

/// Asks for a fresh fetch soon (a currency was added or enabled) instead of waiting for the
/// next scheduled run: records a `fetch_rates` run in the queue. If the queue cannot take it,
/// the next scheduled fetch brings the rates; the request itself never fails for it.
pub async fn request_refresh(
    state: &crate::startup::AppState,
    registry: &crate::tasks::TaskRegistry,
    reason: &str,
) {
    cache::announce_new_rates(state).await;
    match crate::tasks::enqueue_job(state, registry, &jobs::FetchRates::default()).await {
        Ok(run) => tracing::info!(reason, run_id = %run.id, "fresh rates requested"),
        Err(e) => tracing::warn!(reason, error = %e, "could not request fresh rates"),
    }
}

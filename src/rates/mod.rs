//! Exchange rates: where they come from and how they are read. This module owns the provider
//! side (which providers exist, how their payloads are parsed and validated, how they are
//! fetched with retries, circuit breakers and failover) and the ECB CSV files used to load
//! history. Storing rates and serving them over HTTP live elsewhere and call this API.

// Everything public here is called from other modules; keep it documented.
#![warn(missing_docs)]

pub mod client;
pub mod ecb_csv;
pub mod provider;

/// Asks for a fresh fetch soon (a currency was added or enabled) instead of waiting for the
/// next scheduled run.
pub async fn request_refresh(state: &crate::startup::AppState, reason: &str) {
    // Wired to the task queue's `fetch_rates` job when the tasks capability lands.
    let _ = state;
    tracing::info!(reason, "fresh rates requested");
}

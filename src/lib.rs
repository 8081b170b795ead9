//! Currency conversion service: one crate, modules by capability. See README.md for the tour.

pub mod access;
pub mod auth;
pub mod client_ip;
pub mod clock;
pub mod conversions;
pub mod currencies;
pub mod currency_code;
pub mod db;
pub mod error;
pub mod extract;
pub mod gcra;
pub mod head_guard;
pub mod health;
pub mod history;
pub mod idempotency;
pub mod jobs;
pub mod markups;
pub mod memo;
pub mod metrics;
pub mod middleware;
pub mod money;
pub mod monitor;
pub mod openapi;
pub mod pagination;
pub mod quotes;
pub mod rates;
pub mod redis_client;
pub mod retention;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod telemetry;
#[cfg(test)]
mod test_cases;
pub mod webhooks;

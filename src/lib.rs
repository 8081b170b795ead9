//! Currency conversion service: one crate, modules by capability. See README.md for the tour.

pub mod clock;
pub mod currencies;
pub mod db;
pub mod error;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod money;
pub mod openapi;
pub mod redis_client;
pub mod settings;
pub mod startup;
pub mod tasks;
pub mod telemetry;

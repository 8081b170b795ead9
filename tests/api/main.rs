//! One integration-test binary (faster to link than one per file); modules by capability.

mod auth;
mod conversions;
mod currencies;
mod first_start;
mod foundation;
mod helpers;
mod login_throttle;
mod monitor;
mod proxy;
mod rates;
mod sessions;
mod tasks;

//! One integration-test binary (faster to link than one per file); modules by capability.

mod auth;
mod contract;
mod conversions;
mod currencies;
mod first_start;
mod foundation;
mod helpers;
mod login_throttle;
mod monitor;
mod outages;
mod proxy;
mod quotes;
mod rates;
mod sessions;
mod tasks;

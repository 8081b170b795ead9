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
mod password_policy;
mod proxy;
mod quotes;
mod rates;
mod registration;
mod sessions;
mod tasks;

//! One integration-test binary (faster to link than one per file); modules by capability.
// Tests read and poke tables directly, some of them test-only (`test_job_log`), with runtime
// queries; the service's own SQL is checked at compile time (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod auth;
mod batches;
mod consensus;
mod consensus_cost;
mod contract;
mod conversion_history;
mod conversions;
mod credentials;
mod currencies;
mod ecb_oracle;
mod first_start;
mod foundation;
mod group_commit;
mod helpers;
mod idempotency;
mod limits;
mod login_throttle;
mod markups;
mod monitor;
mod outages;
mod partitions;
mod password_policy;
mod pricing;
mod proxy;
mod quotes;
mod rates;
mod read_memos;
mod registration;
mod replica;
mod request_heads;
mod retention;
mod security_headers;
mod sessions;
mod settings_cli;
mod tasks;
mod usage;
mod webhooks;

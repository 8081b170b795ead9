//! One integration-test binary (faster to link than one per file); modules by capability.

mod foundation;
mod helpers;
mod proxy;
mod tasks;

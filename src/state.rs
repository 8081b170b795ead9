//! The shared core every capability may use: the database pool, Redis, settings and the clock,
//! plus which pieces this process runs. It imports no capability, so capabilities can depend on
//! it without depending on each other or on `startup` (which sits on top and wires them).
//! Per-process memory that belongs to one capability (the latest-rates cache, the token status
//! memo) is not here: `startup` hands it to the routes and jobs that use it.

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::redis_client::Redis;
use crate::replica::ReadPool;
use crate::settings::Settings;

/// Which pieces a process runs, so one binary can scale out as separate processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessRole {
    /// HTTP API, scheduler and workers in one process.
    All,
    /// HTTP API only.
    Api,
    /// Queue workers only.
    Worker,
    /// Cron scheduler (and the queue reconciler) only.
    Scheduler,
}

impl ProcessRole {
    /// Whether this process answers HTTP.
    pub fn serves_http(self) -> bool {
        matches!(self, ProcessRole::All | ProcessRole::Api)
    }

    /// Whether this process executes queued runs.
    pub fn runs_workers(self) -> bool {
        matches!(self, ProcessRole::All | ProcessRole::Worker)
    }

    /// Whether this process runs the cron scheduler and the queue reconciler.
    pub fn runs_scheduler(self) -> bool {
        matches!(self, ProcessRole::All | ProcessRole::Scheduler)
    }
}

/// The core connections and configuration, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL, the record of everything.
    pub db: PgPool,
    /// Where reads that may be a moment behind go: the read replica while it is current
    /// enough, else `db`.
    pub reads: ReadPool,
    /// Redis, for caches, throttles and the task transport.
    pub redis: Redis,
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// Time, injected so tests can move it.
    pub clock: Clock,
}

impl AppState {
    /// Opens the pools (lazily: nothing connects until first use).
    pub fn new(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let db = crate::db::pool(&settings.database)?;
        Ok(Self {
            reads: ReadPool::new(db.clone(), &settings.database)?,
            db,
            redis: Redis::new(&settings.redis)?,
            settings: Arc::new(settings),
            clock,
        })
    }
}

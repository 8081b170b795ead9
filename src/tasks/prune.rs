//! The retention job: deletes finished run records older than `tasks.retention_days`, and the
//! `Idempotency-Key`s of every scope that have expired ([`crate::idempotency`]; an expired key is
//! already free to be claimed again, so this only keeps the table small).

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use sqlx::PgPool;

use super::registry::{Job, JobContext};
use super::store;
use crate::clock::Clock;

/// What [`Prune`] runs with.
#[derive(Clone)]
pub struct PruneContext {
    /// Where the runs are recorded.
    pub db: PgPool,
    /// Now, for the cut-off.
    pub clock: Clock,
    /// `tasks.retention_days`.
    pub retention_days: u32,
}

/// Deletes `succeeded`, `failed` and `dead` runs that finished more than
/// `tasks.retention_days` ago (pending and running runs are never touched), and expired
/// idempotency keys.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Prune {}

impl Job for Prune {
    const NAME: &'static str = "prune";
    type Context = PruneContext;

    #[tracing::instrument(name = "prune", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<PruneContext>) -> anyhow::Result<()> {
        let days = i64::from(ctx.state.retention_days);
        let now = ctx.state.clock.now();
        let before = now - TimeDelta::days(days);
        let deleted = store::delete_finished_before(&ctx.state.db, before).await?;
        if deleted > 0 {
            tracing::info!(deleted, %before, "pruned finished task runs");
        } else {
            tracing::debug!(%before, "no finished task runs to prune");
        }
        let forgotten = crate::idempotency::delete_expired(&ctx.state.db, now).await?;
        if forgotten > 0 {
            tracing::info!(forgotten, "forgot expired idempotency keys");
        }
        Ok(())
    }
}

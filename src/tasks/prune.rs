//! The retention job: deletes finished run records older than `tasks.retention_days`.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::registry::{Job, JobContext};
use super::store;

/// Deletes `succeeded`, `failed` and `dead` runs that finished more than
/// `tasks.retention_days` ago. Pending and running runs are never touched.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Prune {}

impl Job for Prune {
    const NAME: &'static str = "prune";

    #[tracing::instrument(name = "prune", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let days = i64::from(ctx.state.settings.tasks.retention_days);
        let before = ctx.state.clock.now() - TimeDelta::days(days);
        let deleted = store::delete_finished_before(&ctx.state.db, before).await?;
        tracing::info!(deleted, %before, "pruned finished task runs");
        Ok(())
    }
}

//! The periodic finalization of conversions as a queue job.

use serde::{Deserialize, Serialize};

use crate::state::AppState;
use crate::tasks::{Job, JobContext};

/// Makes due `temporary` conversions `permanent` and forgets expired idempotency keys.
/// Idempotent: a second delivery finds nothing left to do.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FinalizeConversions {}

impl Job for FinalizeConversions {
    const NAME: &'static str = "finalize_conversions";
    type Context = AppState;

    #[tracing::instrument(name = "finalize_conversions", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<AppState>) -> anyhow::Result<()> {
        let finalized = super::service::finalize_due(&ctx.state).await?;
        let forgotten =
            super::store::delete_expired_idempotency_keys(&ctx.state.db, ctx.state.clock.now())
                .await?;
        tracing::info!(finalized, forgotten, "conversions finalized");
        Ok(())
    }
}

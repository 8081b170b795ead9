//! The periodic finalization of conversions as a queue job.

use serde::{Deserialize, Serialize};

use super::Conversions;
use crate::tasks::{Job, JobContext};

/// Makes due `temporary` conversions `permanent`. Idempotent: a second delivery finds nothing left to do.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FinalizeConversions {}

impl Job for FinalizeConversions {
    const NAME: &'static str = "finalize_conversions";
    type Context = Conversions;

    #[tracing::instrument(name = "finalize_conversions", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<Conversions>) -> anyhow::Result<()> {
        let conversions = &ctx.state;
        let finalized = super::service::finalize_due(conversions).await?;
        // Every minute: worth a line only when it did something.
        if finalized > 0 {
            tracing::info!(finalized, "conversions finalized");
        } else {
            tracing::debug!("no conversions due to finalize");
        }
        Ok(())
    }
}

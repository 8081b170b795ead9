//! The periodic recording of ended rate locks as a queue job.

use serde::{Deserialize, Serialize};

use super::Quotes;
use crate::tasks::{Job, JobContext};

/// Records the expiry of locked quotes whose lock has ended (announcing `quote.expired` to
/// subscribed partners). Idempotent: a second delivery finds nothing left to do.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExpireQuotes {}

impl Job for ExpireQuotes {
    const NAME: &'static str = "expire_quotes";
    type Context = Quotes;

    #[tracing::instrument(name = "expire_quotes", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<Quotes>) -> anyhow::Result<()> {
        let expired = super::service::record_expiries(&ctx.state).await?;
        if expired > 0 {
            tracing::info!(expired, "quote expiries recorded");
        }
        Ok(())
    }
}

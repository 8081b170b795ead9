//! The scheduled rates fetch as a queue job.

use serde::{Deserialize, Serialize};

use crate::tasks::{Job, JobContext};

/// Fetches and stores the latest rates (`rates::service::fetch_and_store`). Idempotent: the
/// same publication fetched twice stores nothing new. A fetch where every provider fails is an
/// error, so the queue retries it with backoff and finally marks it dead, visibly.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FetchRates {}

impl Job for FetchRates {
    const NAME: &'static str = "fetch_rates";
    type Context = super::Rates;

    #[tracing::instrument(name = "fetch_rates", skip_all, fields(run_id = %ctx.run_id, attempt = ctx.attempt))]
    async fn run(&self, ctx: &JobContext<super::Rates>) -> anyhow::Result<()> {
        let report = super::service::fetch_and_store(&ctx.state).await?;
        tracing::info!(
            provider = %report.provider,
            as_of = %report.as_of,
            changed = report.changed,
            unchanged = report.unchanged,
            failures = report.failures.len(),
            "rates fetched"
        );
        Ok(())
    }
}

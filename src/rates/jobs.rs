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
        let result = super::service::fetch_and_store(&ctx.state).await;
        if ctx.state.runtime.first_fetch() {
            first_fetch_summary(ctx, result.as_ref().err()).await;
        }
        let report = result?;
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

/// The start-up summary's second half: whether the configured provider answered the first fetch
/// of this process, and what the service serves meanwhile. One line, instead of leaving a new
/// user to piece it together from retry warnings.
async fn first_fetch_summary(ctx: &JobContext<super::Rates>, error: Option<&anyhow::Error>) {
    let state = &ctx.state;
    let providers = super::service::describe_providers(&state.settings);
    let served = super::service::describe_served_rates(state)
        .await
        .unwrap_or_else(|e| format!("stored rates unknown ({e:#})"));
    match error {
        None => tracing::info!("rates provider {providers} answered; {served}"),
        Some(e) => tracing::warn!(
            "rates provider {providers} did not answer ({}); {served}. Fetches are retried \
             with backoff; failed runs and their cause are on /monitor",
            root_cause(e)
        ),
    }
}

/// The innermost cause of a fetch failure, short enough for one log line (the full chain is in
/// the task run's error).
fn root_cause(error: &anyhow::Error) -> String {
    let text = error.root_cause().to_string();
    // "…: dns error: failed to lookup address information: Name or service not known" — the
    // tail after the last transport layer names what went wrong.
    let last = text
        .split("; ")
        .last()
        .unwrap_or(&text)
        .rsplitn(3, ": ")
        .collect::<Vec<_>>();
    let mut parts: Vec<&str> = last.into_iter().rev().collect();
    if parts.len() == 3 {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::root_cause;

    #[test]
    fn the_root_cause_is_the_tail_of_the_last_failure() {
        let e = anyhow::anyhow!(
            "all rates providers failed: frankfurter: attempt 1/3: transport error: GET \
             https://api.frankfurter.dev/v1/latest: error sending request: client error \
             (Connect): dns error: failed to lookup address information: Name or service not known"
        )
        .context("fetching rates");
        assert_eq!(
            root_cause(&e),
            "failed to lookup address information: Name or service not known"
        );
        let e = anyhow::anyhow!(
            "ecb: attempt 1/1: transport error: GET http://127.0.0.1:1/latest: error sending \
             request: client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(
            root_cause(&e),
            "tcp connect error: Connection refused (os error 111)"
        );
    }
}

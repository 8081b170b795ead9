//! The scheduled rates fetch as a queue job.

use serde::{Deserialize, Serialize};

use super::client::FetchFailure;
use crate::settings::ProviderKind;
use crate::tasks::{Job, JobContext};

/// Fetches and stores the latest rates (`rates::service::fetch_and_store`). Idempotent: the
/// same publication fetched twice stores nothing new.
///
/// Two kinds of failure, told apart because they call for different people:
/// - **An outage**: every provider was unavailable (no network, DNS, refused, timeouts, 5xx/429,
///   breakers open). The client has already retried within the run, and the next cron tick is
///   the next attempt, so the run ends `succeeded` with one WARN line naming each provider's
///   cause and the time of the next fetch. Retrying it through the queue would only repeat the
///   same warning and end `dead` every cycle, drowning the runs that need a person. The outage
///   shows where it matters: on the monitor the rates turn `stale` ("last fetched …", or "never
///   fetched" for the seed), and conversions follow `conversions.stale_rates`.
/// - **A broken job**: a provider answered with something we refuse (a 4xx such as a bad key, a
///   malformed or invalid payload), or storing failed. That is an error: the queue retries it
///   with backoff and finally marks it `dead`, with the error on the monitor's Recent failures.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FetchRates {}

impl Job for FetchRates {
    const NAME: &'static str = "fetch_rates";
    type Context = super::Rates;

    #[tracing::instrument(name = "fetch_rates", skip_all, fields(run_id = %ctx.run_id, attempt = ctx.attempt))]
    async fn run(&self, ctx: &JobContext<super::Rates>) -> anyhow::Result<()> {
        let result = super::service::fetch_and_store(&ctx.state).await;
        let first = ctx.state.runtime.first_fetch();
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                let outage = e
                    .downcast_ref::<FetchFailure>()
                    .filter(|failure| failure.outage)
                    .map(causes);
                return match outage {
                    Some(causes) => {
                        report_outage(ctx, first, &causes);
                        Ok(())
                    }
                    None => {
                        if first {
                            first_fetch_summary(ctx, Some(&e)).await;
                        }
                        Err(e)
                    }
                };
            }
        };
        if first {
            first_fetch_summary(ctx, None).await;
        }
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

/// Each provider's last cause, short, providers that failed alike together:
/// `frankfurter, ecb: Name or service not known`.
fn causes(failure: &FetchFailure) -> String {
    let mut last: Vec<(ProviderKind, String)> = Vec::new();
    for (kind, message) in &failure.failures {
        let cause = tail(message);
        match last.iter_mut().find(|(k, _)| k == kind) {
            Some(entry) => entry.1 = cause,
            None => last.push((*kind, cause)),
        }
    }
    let mut grouped: Vec<(Vec<ProviderKind>, String)> = Vec::new();
    for (kind, cause) in last {
        match grouped.iter_mut().find(|(_, c)| *c == cause) {
            Some((kinds, _)) => kinds.push(kind),
            None => grouped.push((vec![kind], cause)),
        }
    }
    grouped
        .iter()
        .map(|(kinds, cause)| {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            format!("{}: {cause}", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One WARN line for a fetch cycle that found every provider unavailable: the causes and when
/// the next fetch comes (the start-up line has already said what is served meanwhile).
fn report_outage(ctx: &JobContext<super::Rates>, first: bool, causes: &str) {
    let state = &ctx.state;
    let next = state
        .fetch_schedule
        .cron()
        .find_next_occurrence(&state.clock.now(), false)
        .map(|at| format!("at {}", at.format("%H:%M:%S UTC")))
        .unwrap_or_else(|_| "at the next tick".into());
    if first {
        tracing::warn!(
            "rates providers unreachable ({causes}); the stored rates are served meanwhile. \
             Next fetch {next} (tasks.schedule.fetch_rates); `currency-conversion rates fetch` \
             tries now"
        );
    } else {
        tracing::warn!("rates providers unreachable ({causes}); next fetch {next}");
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
            "rates provider {providers} failed ({}); {served}. The fetch is retried with \
             backoff; failed runs and their cause are on /monitor",
            root_cause(e)
        ),
    }
}

/// The innermost cause of a fetch failure, short enough for one log line (the full chain is in
/// the task run's error).
fn root_cause(error: &anyhow::Error) -> String {
    tail(&error.root_cause().to_string())
}

/// The end of a failure message that names what went wrong: "…: dns error: failed to lookup
/// address information: Name or service not known" — the tail after the last transport layer.
fn tail(text: &str) -> String {
    let last = text
        .split("; ")
        .last()
        .unwrap_or(text)
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
    use super::{FetchFailure, ProviderKind, causes, root_cause};

    #[test]
    fn an_outage_names_each_providers_last_cause_once() {
        let dns = "transport error: GET https://x/latest: error sending request: client error \
                   (Connect): dns error: failed to lookup address information: Name or service \
                   not known";
        let failure = FetchFailure {
            failures: vec![
                (ProviderKind::Frankfurter, format!("attempt 1/2: {dns}")),
                (ProviderKind::Frankfurter, format!("attempt 2/2: {dns}")),
                (ProviderKind::Ecb, format!("attempt 1/1: {dns}")),
                (
                    ProviderKind::OpenExchangeRates,
                    "attempt 1/1: timed out: GET https://y: operation timed out".into(),
                ),
            ],
            outage: true,
        };
        assert_eq!(
            causes(&failure),
            "frankfurter, ecb: failed to lookup address information: Name or service not known; \
             openexchangerates: GET https://y: operation timed out"
        );
    }

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

//! Delivery: the `deliver_webhooks` job claims due deliveries from PostgreSQL fairly (claims
//! take turns under an advisory lock, so dispatchers on several instances share the work and
//! never send one attempt twice; caps on attempts in flight per endpoint and per partner, and
//! partners by turns, so one slow receiver holds only its own slots), signs and POSTs each, and
//! records the outcome, which also moves the endpoint's circuit breaker. PostgreSQL holds every
//! delivery, its due time and every breaker, so a flushed Redis loses nothing and instances agree.
//!
//! At least once: a receiver may see an event again (a lost answer, a dispatcher that died after
//! sending); the `webhook-id` is the same every time, for it to deduplicate. A 2xx answer
//! delivers; anything else (a redirect included: none is followed) is retried on
//! `webhooks.retry_schedule_secs`, and the delivery is dead after the last attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Webhooks;
use super::guard::{self, GuardedResolver};
use super::signing;
use super::store::{self, Claimed, Outcome};
use crate::settings::WebhookSettings;
use crate::tasks::{Job, JobContext};

/// Slack beyond the request timeout before an unfinished attempt's delivery is due again.
const LEASE_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// How long one dispatcher run keeps claiming before it lets the next run continue.
const RUN_BUDGET: Duration = Duration::from_secs(120);

/// While attempts are in flight and nothing more could be claimed, how often the dispatcher looks
/// again for deliveries that fell due (another partner's new event must not wait for the slow
/// receivers to answer).
const CLAIM_POLL: Duration = Duration::from_millis(500);

/// Longest response body kept in `last_error`, in characters.
const ERROR_BODY_CHARS: usize = 200;

/// Most bytes of a receiver's answer ever read. A receiver decides how much it sends; we decide
/// how much we take: enough for the excerpt in `last_error`, never the body it streams.
const ERROR_BODY_BYTES: usize = 4096;

/// How long reading that excerpt may take: a receiver trickling its body keeps a dispatcher slot
/// for this long at most, whatever `webhooks.timeout_secs` allows for the whole attempt.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(2);

/// The client deliveries are sent with: `webhooks.timeout_secs`, no redirects, no proxy, and
/// the SSRF guard as its resolver.
pub(super) fn http_client(settings: &WebhookSettings) -> anyhow::Result<reqwest::Client> {
    let timeout = Duration::from_secs(settings.timeout_secs.max(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect is an answer, not an instruction: following one would let a receiver
        // point us anywhere, past the guard's registration check.
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would connect for us, to addresses the guard never
        // sees.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private_targets,
        }))
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .context("building the webhook HTTP client")
}

/// Delivering: what the `deliver_webhooks` job does with its [`Webhooks`] context.
impl Webhooks {
    /// Sends due deliveries on `webhooks.concurrency` slots until none is due and none is in
    /// flight, or the run's time budget is spent. A slot that frees is filled at once, and
    /// while every due delivery waits behind a cap the dispatcher looks again every
    /// [`CLAIM_POLL`], so one slow receiver holds only its own slots: what becomes due
    /// meanwhile for anyone else is sent beside it ([`store::claim_due`] decides who is next).
    /// Returns how many attempts were made. A claim that fails (PostgreSQL away) ends the run
    /// with its error once the attempts in flight are done.
    pub async fn dispatch_due(&self) -> anyhow::Result<u64> {
        let started = Instant::now();
        let slots = self.settings.concurrency.max(1);
        let timeout = chrono::TimeDelta::seconds(
            i64::try_from(self.settings.timeout_secs.max(1)).unwrap_or(60),
        );
        // Each attempt is a task of its own, so attempts keep running (and give their pool
        // connections back) while this loop waits for a claim; dropping the set (the job
        // stopped) stops them, as dropping the run would.
        let mut in_flight = tokio::task::JoinSet::new();
        let mut attempts = 0;
        let mut failed = None;
        loop {
            let claiming = failed.is_none() && started.elapsed() < RUN_BUDGET;
            let mut took_none = true;
            if claiming && in_flight.len() < slots {
                let now = self.clock.now();
                let free = i64::try_from(slots - in_flight.len()).unwrap_or(i64::MAX);
                let limits = self.claim_limits(free);
                match store::claim_due(&self.db, now, limits, now + timeout + LEASE_MARGIN).await {
                    Ok(claimed) => {
                        took_none = claimed.is_empty();
                        attempts += u64::try_from(claimed.len()).unwrap_or(0);
                        for d in claimed {
                            let webhooks = self.clone();
                            in_flight.spawn(async move { webhooks.attempt(d).await });
                        }
                    }
                    Err(e) => {
                        failed =
                            Some(anyhow::Error::from(e).context("claiming due webhook deliveries"));
                    }
                }
            }
            if in_flight.is_empty() {
                if took_none || !claiming {
                    break;
                }
                continue;
            }
            if claiming && took_none {
                // Nothing could be taken now; look again when an attempt ends or a moment passed.
                tokio::select! {
                    ended = in_flight.join_next() => settle(ended),
                    _ = tokio::time::sleep(CLAIM_POLL) => {}
                }
            } else if !claiming || in_flight.len() >= slots {
                settle(in_flight.join_next().await);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(attempts),
        }
    }

    /// The caps of one claim of at most `free` deliveries, from `webhooks.*`.
    fn claim_limits(&self, free: i64) -> store::ClaimLimits {
        store::ClaimLimits {
            max: free.min(i64::from(self.settings.dispatch_batch.max(1))),
            per_endpoint: i64::from(self.settings.max_in_flight_per_endpoint.max(1)),
            per_partner: i64::from(self.settings.max_in_flight_per_partner.max(1)),
            breaker_failures: self.breaker_failures(),
        }
    }

    fn breaker_failures(&self) -> i32 {
        i32::try_from(self.settings.breaker_failures.max(1)).unwrap_or(i32::MAX)
    }

    /// One attempt of one delivery; the outcome is recorded, never returned: one failing
    /// receiver must not fail the run the others are in.
    #[tracing::instrument(name = "webhook_attempt", skip_all, fields(delivery_id = %d.id, attempt = d.attempts))]
    async fn attempt(&self, d: Claimed) {
        let now = self.clock.now();
        let started = Instant::now();
        let result = self.send(&d, now).await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (status_code, error) = match result {
            Ok(status) if status.is_success() => (Some(i32::from(status.as_u16())), None),
            Ok(status) => (
                Some(i32::from(status.as_u16())),
                Some(format!("the endpoint answered {status}")),
            ),
            Err(SendError::Answered { status, body }) => (
                Some(i32::from(status)),
                Some(format!("the endpoint answered {status}: {body}")),
            ),
            Err(SendError::Failed(e)) => (None, Some(e)),
        };
        let next_attempt_at = match &error {
            None => None,
            Some(_) => self.next_attempt_after(d.attempts, self.clock.now()),
        };
        if let Some(error) = &error {
            match next_attempt_at {
                Some(at) => tracing::info!(error, %at, "webhook attempt failed; will retry"),
                None => tracing::warn!(error, "webhook delivery is dead after its last attempt"),
            }
        }
        let outcome = Outcome {
            status_code,
            latency_ms,
            error: error.as_deref(),
            next_attempt_at,
        };
        let now = self.clock.now();
        let cooldown =
            chrono::TimeDelta::seconds(crate::settings::secs(self.settings.breaker_cooldown_secs));
        let recorded = store::record_outcome(
            &self.db,
            d.id,
            d.attempts,
            now,
            &outcome,
            self.breaker_failures(),
            now + cooldown,
        )
        .await;
        match recorded {
            Ok(Some(breaker)) if error.is_some() && breaker.paused_until.is_some() => {
                tracing::warn!(
                    endpoint_id = %d.endpoint_id,
                    consecutive_failures = breaker.consecutive_failures,
                    paused_until = ?breaker.paused_until,
                    "webhook endpoint keeps failing: its deliveries wait until the pause ends"
                );
            }
            Ok(_) => {}
            // The claim's lease makes the delivery due again: it is sent once more, as at least
            // once allows.
            Err(e) => tracing::warn!(error = %e, "recording a webhook attempt failed"),
        }
    }

    /// When the attempt after failed attempt number `attempt` is due, or `None` after the last.
    fn next_attempt_after(&self, attempt: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempt.max(1) - 1).ok()?;
        let delay = *self.settings.retry_schedule_secs.get(index)?;
        Some(now + chrono::TimeDelta::seconds(i64::try_from(delay).ok()?))
    }

    async fn send(
        &self,
        d: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<reqwest::StatusCode, SendError> {
        let url = reqwest::Url::parse(&d.url)
            .map_err(|e| SendError::Failed(format!("the stored URL does not parse: {e}")))?;
        // An IP literal never reaches the resolver: check it here.
        if !self.settings.allow_private_targets
            && let Some(host) = url.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
            && let Some(reason) = guard::forbidden_reason(ip)
        {
            tracing::warn!(%ip, reason, "webhook target refused at delivery");
            return Err(SendError::Failed(format!("{ip} is {}", guard::NOT_ALLOWED)));
        }
        let mut secrets = vec![d.secret.as_str()];
        if let (Some(previous), Some(until)) = (&d.previous_secret, d.previous_secret_expires_at)
            && until > now
        {
            secrets.push(previous);
        }
        let id = d.event_id.to_string();
        let timestamp = now.timestamp();
        let signature = signing::signature_header(&secrets, &id, timestamp, &d.payload)
            .map_err(|e| SendError::Failed(format!("{e:#}")))?;
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| SendError::Failed(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(status);
        }
        Err(SendError::Answered {
            status: status.as_u16(),
            body: excerpt(response).await,
        })
    }
}

/// Logs an attempt's task that ended otherwise than by returning (it panicked): its delivery's
/// lease makes it due again.
fn settle(ended: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = ended {
        tracing::error!(error = %e, "a webhook attempt ended without recording its outcome");
    }
}

/// The start of a receiver's answer, for `last_error`: at most [`ERROR_BODY_BYTES`] read within
/// [`ERROR_BODY_WAIT`], then the response is dropped unfinished, which closes the connection
/// rather than draining it, so the rest is never received, let alone buffered.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut head = Vec::with_capacity(ERROR_BODY_BYTES);
    let read = async {
        while head.len() < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = ERROR_BODY_BYTES - head.len();
                    head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // The end of the body, or a broken one: the excerpt is what arrived.
                Ok(None) | Err(_) => break,
            }
        }
    };
    // Out of time: keep what arrived.
    let _ = tokio::time::timeout(ERROR_BODY_WAIT, read).await;
    drop(response);
    String::from_utf8_lossy(&head)
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect()
}

enum SendError {
    /// The endpoint answered with something other than 2xx.
    Answered { status: u16, body: String },
    /// No answer: refused target, connection, TLS, timeout.
    Failed(String),
}

/// reqwest's error and its causes in one line (its Display stops at the outermost).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Sends due webhook deliveries. Scheduled every few seconds (`tasks.schedule.deliver_webhooks`)
/// and enqueued at once by a test ping or a manual retry. Idempotent: a run finds only what is
/// due, and claims are exclusive.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DeliverWebhooks {}

impl Job for DeliverWebhooks {
    const NAME: &'static str = "deliver_webhooks";
    type Context = Webhooks;

    #[tracing::instrument(name = "deliver_webhooks", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<Webhooks>) -> anyhow::Result<()> {
        let attempts = ctx.state.dispatch_due().await?;
        if attempts > 0 {
            tracing::info!(attempts, "webhook deliveries attempted");
        }
        Ok(())
    }
}

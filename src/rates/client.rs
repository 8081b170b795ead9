//! The resilient fetcher: calls the configured providers over HTTP and returns the first valid
//! [`Snapshot`]. It owns timeouts, retries (exponential backoff with full jitter, `Retry-After`
//! honoured), one circuit breaker per provider and failover along the chain primary →
//! fallbacks. It does not store anything: the caller decides what to do with the snapshot and
//! with the report of what failed.
//!
//! API keys never leave this module in clear: URLs are redacted before they reach an error or a
//! log line, and provider messages are scrubbed of the key.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::provider::{ProviderError, ProviderKind, Query, Snapshot, redact};
use crate::clock::Clock;
use crate::currencies::code::CurrencyCode;
use crate::settings::{HttpUrl, RatesSettings};

/// Longest `Retry-After` we wait for; a provider asking for more is failed over instead, since
/// calling it earlier than asked would only fail again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Upper bound of one backoff delay, whatever the attempt number.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Largest response body read from a provider; a full OXR payload is about 5 KiB.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// One provider in the chain: which kind, where, and its key if it needs one.
#[derive(Clone)]
pub struct Endpoint {
    kind: ProviderKind,
    base_url: String,
    api_key: Option<SecretString>,
}

impl Endpoint {
    /// An endpoint at `base_url`, or at the provider's public URL when `None`.
    pub fn new(kind: ProviderKind, base_url: Option<&str>, api_key: Option<SecretString>) -> Self {
        // Settings hand over a checked, trimmed URL (`settings::HttpUrl`), or none.
        let base_url = base_url.unwrap_or(kind.default_base_url()).to_owned();
        Self {
            kind,
            base_url,
            api_key: api_key.filter(|k| !k.expose_secret().is_empty()),
        }
    }

    /// The provider kind.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The base URL (never contains the key).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn key(&self) -> Option<&str> {
        self.api_key.as_ref().map(|k| k.expose_secret())
    }

    fn latest_url(&self, base: CurrencyCode, symbols: &[CurrencyCode]) -> String {
        self.kind
            .latest_url(&self.base_url, self.key(), base, symbols)
    }

    /// `text` with this endpoint's key replaced.
    fn redact(&self, text: &str) -> String {
        redact(text, self.key())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Timeouts, retry and breaker parameters.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, body included.
    pub request_timeout: Duration,
    /// Attempts per provider before failing over (at least 1).
    pub max_attempts: u32,
    /// Ceiling of the first backoff delay; doubles per attempt, full jitter below it.
    pub backoff_base: Duration,
    /// Ceiling of any backoff delay.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured by waiting; longer ones fail over.
    pub max_retry_after: Duration,
    /// Consecutive failures that open a provider's breaker; 0 disables breakers.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses calls before one trial.
    pub breaker_cooldown: Duration,
    /// Largest body read from a provider.
    pub max_body_bytes: usize,
}

impl ClientConfig {
    /// The configuration described by `rates.*` settings, with the module's caps.
    pub fn from_settings(settings: &RatesSettings) -> Self {
        Self {
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
            max_attempts: settings.max_attempts.max(1),
            backoff_base: Duration::from_millis(settings.backoff_base_ms),
            backoff_max: MAX_BACKOFF,
            max_retry_after: MAX_RETRY_AFTER,
            breaker_threshold: settings.breaker_threshold,
            breaker_cooldown: Duration::from_secs(settings.breaker_cooldown_secs),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }

    /// The full-jitter delay after the `failed_attempt`-th failure (1-based):
    /// uniform in `[0, min(backoff_max, backoff_base · 2^(failed_attempt-1))]`.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(32);
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.backoff_max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ceiling_ms))
    }
}

/// Waits between attempts. Injected so that tests can record delays instead of sleeping.
pub trait Sleeper: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Real waiting, with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Where a provider's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `consecutive_failures` counts towards the threshold.
    Closed {
        /// Failures since the last success.
        consecutive_failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// End of the cooldown.
        until: DateTime<Utc>,
    },
    /// One trial call is in flight since `since`; others are refused until it ends (or until a
    /// cooldown has passed, in case the trial was abandoned).
    HalfOpen {
        /// When the trial started.
        since: DateTime<Utc>,
    },
}

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    threshold: u32,
    cooldown: chrono::TimeDelta,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            threshold,
            cooldown: chrono::TimeDelta::from_std(cooldown).unwrap_or(chrono::TimeDelta::MAX),
        }
    }

    /// Permission to call at `now`, or how long to wait.
    fn try_acquire(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::Open { until } => Err((until - now).to_std().unwrap_or_default()),
            BreakerState::HalfOpen { since } if now >= since + self.cooldown => {
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::HalfOpen { since } => {
                Err((since + self.cooldown - now).to_std().unwrap_or_default())
            }
        }
    }

    fn record_success(&mut self) {
        self.state = BreakerState::Closed {
            consecutive_failures: 0,
        };
    }

    fn record_failure(&mut self, now: DateTime<Utc>) {
        if self.threshold == 0 {
            return;
        }
        let open = BreakerState::Open {
            until: now + self.cooldown,
        };
        self.state = match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } if consecutive_failures + 1 < self.threshold => BreakerState::Closed {
                consecutive_failures: consecutive_failures + 1,
            },
            _ => open,
        };
    }
}

struct Link {
    endpoint: Endpoint,
    breaker: Mutex<Breaker>,
    /// The error of the last failed call, so that a fetch refused by an open breaker can say
    /// why the breaker opened (DNS, connection refused…) instead of only "breaker open".
    last_failure: Mutex<Option<String>>,
}

impl Link {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A panic while holding this lock cannot leave the state half-written (plain copies).
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_failure.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A snapshot and what failed before it was obtained.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    /// The first valid snapshot along the chain. Its base is the provider's
    /// ([`ProviderKind::base_for`]); when that differs from the requested base, the requested
    /// base is among the quotes so that [`Snapshot::rebased`] can derive it.
    pub snapshot: Snapshot,
    /// Failed attempts before it, in order, with redacted messages.
    pub failures: Vec<(ProviderKind, String)>,
}

/// Why one provider gave no snapshot: `unavailable` when its last failure was one to wait out
/// (no answer, timeout, 5xx, 429, breaker open), not a refusal of what it answered.
struct Unobtained {
    unavailable: bool,
}

/// Every provider in the chain failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("all rates providers failed: {}", describe(.failures))]
pub struct FetchFailure {
    /// Every failed attempt, in order, with redacted messages.
    pub failures: Vec<(ProviderKind, String)>,
    /// Every provider was unavailable (no answer, a timeout, a 5xx or 429, or its breaker
    /// open), as opposed to one answering with something we refuse (a 4xx such as a bad key,
    /// a malformed or invalid payload): an outage to wait out, not a fault to fix.
    pub outage: bool,
}

fn describe(failures: &[(ProviderKind, String)]) -> String {
    /// Consecutive attempts at one provider that failed the same way.
    struct Entry<'a> {
        kind: ProviderKind,
        attempts: Option<(&'a str, &'a str, &'a str)>,
        text: &'a str,
    }
    // "attempt 2/3: text" -> ("2", "3", "text").
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (kind, message) in failures {
        let parsed = message
            .strip_prefix("attempt ")
            .and_then(|rest| rest.split_once(": "))
            .and_then(|(n, text)| n.split_once('/').map(|(i, of)| (i, of, text)));
        if let (Some((i, of, text)), Some(prev)) = (parsed, entries.last_mut())
            && let Some((_, last, prev_of)) = prev.attempts.as_mut()
            && prev.kind == *kind
            && prev.text == text
            && *prev_of == of
        {
            *last = i;
            continue;
        }
        entries.push(match parsed {
            Some((i, of, text)) => Entry {
                kind: *kind,
                attempts: Some((i, i, of)),
                text,
            },
            None => Entry {
                kind: *kind,
                attempts: None,
                text: message,
            },
        });
    }
    entries
        .iter()
        .map(|e| match e.attempts {
            Some((first, last, of)) if first != last => {
                format!("{}: attempts {first}-{last}/{of}: {}", e.kind, e.text)
            }
            Some((first, _, of)) => format!("{}: attempt {first}/{of}: {}", e.kind, e.text),
            None => format!("{}: {}", e.kind, e.text),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fetches the latest rates along a chain of providers. Cheap to share behind an `Arc`; the
/// breakers are per client, so build one client per process.
pub struct RatesClient {
    http: reqwest::Client,
    chain: Vec<Link>,
    config: ClientConfig,
    sleeper: Arc<dyn Sleeper>,
    /// Measures how long a fetch has taken, so a breaker's cooldown runs from the failure.
    clock: Clock,
}

impl fmt::Debug for RatesClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RatesClient")
            .field(
                "chain",
                &self.chain.iter().map(|l| &l.endpoint).collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Makes ring rustls' process-wide crypto provider, which reqwest (built without one) needs.
/// Installing twice is harmless: the second attempt reports an error we ignore.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RatesClient {
    /// The chain `rates.provider` (at `rates.provider_url`, with `rates.api_key`) followed by
    /// `rates.fallbacks`. A fallback of the same kind as the primary shares its key; another
    /// fallback that needs a key is refused, since settings hold only one.
    pub fn from_settings(settings: &RatesSettings) -> anyhow::Result<RatesClient> {
        let primary = settings.provider;
        let key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().trim().is_empty());
        if primary.needs_api_key() && key.is_none() {
            anyhow::bail!("rates.api_key: {primary} needs an API key");
        }
        let mut chain = vec![Endpoint::new(
            primary,
            settings.provider_url.as_ref().map(HttpUrl::as_str),
            key.clone().filter(|_| primary.needs_api_key()),
        )];
        for (i, fallback) in settings.fallbacks.iter().enumerate() {
            let kind = fallback.kind;
            let fallback_key = if kind == primary { key.clone() } else { None };
            if kind.needs_api_key() && fallback_key.is_none() {
                anyhow::bail!(
                    "rates.fallbacks[{i}]: {kind} needs an API key, and rates.api_key belongs to the primary provider ({primary})"
                );
            }
            chain.push(Endpoint::new(
                kind,
                fallback.url.as_ref().map(HttpUrl::as_str),
                fallback_key,
            ));
        }
        if settings.max_attempts == 0 {
            anyhow::bail!("rates.max_attempts: must be at least 1");
        }
        RatesClient::new(chain, ClientConfig::from_settings(settings))
    }

    /// A client over an explicit chain (first is the primary). Sleeps with tokio.
    pub fn new(chain: Vec<Endpoint>, config: ClientConfig) -> anyhow::Result<RatesClient> {
        if chain.is_empty() {
            anyhow::bail!("rates: at least one provider is needed");
        }
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("building the rates HTTP client")?;
        let chain = chain
            .into_iter()
            .map(|endpoint| Link {
                endpoint,
                breaker: Mutex::new(Breaker::new(
                    config.breaker_threshold,
                    config.breaker_cooldown,
                )),
                last_failure: Mutex::new(None),
            })
            .collect();
        Ok(RatesClient {
            http,
            chain,
            config,
            sleeper: Arc::new(TokioSleeper),
            clock: Clock::system(),
        })
    }

    /// The clock that tells how far a fetch has got since it started (the application's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces how the client waits between attempts (tests record instead of sleeping).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The chain, primary first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.chain.iter().map(|l| &l.endpoint)
    }

    /// Each provider's breaker, in chain order.
    pub fn breaker_states(&self) -> Vec<(ProviderKind, BreakerState)> {
        self.chain
            .iter()
            .map(|l| (l.endpoint.kind, l.breaker().state))
            .collect()
    }

    /// The latest rates of `symbols` (all if empty) against `base`, from the first provider
    /// of the chain that gives a valid snapshot. `now` drives validation and the breakers.
    #[tracing::instrument(name = "rates.fetch", skip(self, symbols), fields(%base, symbols = symbols.len()))]
    pub async fn fetch(
        &self,
        base: CurrencyCode,
        symbols: &[CurrencyCode],
        now: DateTime<Utc>,
    ) -> Result<FetchOutcome, FetchFailure> {
        let mut failures = Vec::new();
        let mut outage = true;
        for link in &self.chain {
            match self
                .fetch_from(link, base, symbols, now, &mut failures)
                .await
            {
                Ok(snapshot) => {
                    if !failures.is_empty() {
                        tracing::warn!(
                            provider = %snapshot.provider,
                            failed = failures.len(),
                            "rates obtained after failures: {}",
                            describe(&failures)
                        );
                    }
                    return Ok(FetchOutcome { snapshot, failures });
                }
                Err(Unobtained { unavailable }) => outage &= unavailable,
            }
        }
        // The caller (the fetch job) reports the failure with this text; one line is enough.
        tracing::debug!("all rates providers failed: {}", describe(&failures));
        Err(FetchFailure { failures, outage })
    }

    /// Up to `max_attempts` calls to one provider; failures are appended to `failures`.
    async fn fetch_from(
        &self,
        link: &Link,
        base: CurrencyCode,
        symbols: &[CurrencyCode],
        now: DateTime<Utc>,
        failures: &mut Vec<(ProviderKind, String)>,
    ) -> Result<Snapshot, Unobtained> {
        let kind = link.endpoint.kind;
        let provider_base = kind.base_for(base);
        // Ask a fixed-base provider for the requested base too, so the caller can rebase.
        let mut wanted: Vec<CurrencyCode> = symbols
            .iter()
            .copied()
            .filter(|c| *c != provider_base)
            .collect();
        if provider_base != base && !wanted.is_empty() && !wanted.contains(&base) {
            wanted.push(base);
        }
        let max_attempts = self.config.max_attempts.max(1);
        // `now` is when the fetch started; attempts, timeouts and backoff take time after it,
        // and the breaker must see the time of each call and failure, not of the fetch's start.
        let started = self.clock.now();
        let at = || now + (self.clock.now() - started);
        for attempt in 1..=max_attempts {
            let acquired = link.breaker().try_acquire(at());
            if let Err(wait) = acquired {
                let open = ProviderError::CircuitOpen(wait).to_string();
                let message = match link.last_failure().as_deref() {
                    Some(cause) => format!("{open}; it opened after: {cause}"),
                    None => open,
                };
                failures.push((kind, message));
                return Err(Unobtained { unavailable: true });
            }
            let result = self.attempt(link, provider_base, &wanted, now).await;
            let error = match result {
                Ok(snapshot) => {
                    link.breaker().record_success();
                    *link.last_failure() = None;
                    return Ok(snapshot);
                }
                Err(error) => error,
            };
            link.breaker().record_failure(at());
            *link.last_failure() = Some(error.to_string());
            let message = format!("attempt {attempt}/{max_attempts}: {error}");
            // One warning per fetch (below) says what failed; each attempt is detail.
            tracing::debug!(provider = %kind, "rates fetch failed, {message}");
            failures.push((kind, message));
            if !error.is_retryable() || attempt == max_attempts {
                return Err(Unobtained {
                    unavailable: error.is_retryable(),
                });
            }
            let delay = match error.retry_after() {
                Some(asked) if asked > self.config.max_retry_after => {
                    failures.push((
                        kind,
                        format!(
                            "Retry-After of {}s exceeds {}s; failing over",
                            asked.as_secs(),
                            self.config.max_retry_after.as_secs()
                        ),
                    ));
                    return Err(Unobtained { unavailable: true });
                }
                Some(asked) => asked,
                None => self.config.backoff(attempt),
            };
            self.sleeper.sleep(delay).await;
        }
        Err(Unobtained { unavailable: true })
    }

    /// One HTTP call and the parse of its body.
    async fn attempt(
        &self,
        link: &Link,
        base: CurrencyCode,
        symbols: &[CurrencyCode],
        now: DateTime<Utc>,
    ) -> Result<Snapshot, ProviderError> {
        let endpoint = &link.endpoint;
        let url = endpoint.latest_url(base, symbols);
        let shown_url = endpoint.redact(&url);
        tracing::debug!(provider = %endpoint.kind, url = %shown_url, "fetching rates");
        let mut response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| transport_error(e, &shown_url, endpoint))?;
        let status = response.status();
        let retry_after = if status.as_u16() == 429 || status.as_u16() == 503 {
            parse_retry_after(response.headers(), now)
        } else {
            None
        };
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(e, &shown_url, endpoint))?
        {
            if body.len() + chunk.len() > self.config.max_body_bytes {
                return Err(ProviderError::Malformed(format!(
                    "body larger than {} bytes",
                    self.config.max_body_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(ProviderError::Status {
                status: status.as_u16(),
                retry_after,
                message: endpoint
                    .kind
                    .error_message(&body)
                    .map(|m| endpoint.redact(&m)),
            });
        }
        let query = Query { base, symbols, now };
        endpoint
            .kind
            .parse(&body, &query)
            .map_err(|e| scrub(e, endpoint))
    }
}

/// Describes a reqwest failure without its URL (which may hold the key), through its causes.
fn transport_error(error: reqwest::Error, shown_url: &str, endpoint: &Endpoint) -> ProviderError {
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    // The path names the endpoint; the query (every symbol asked for) only makes the line long.
    let path = shown_url.split('?').next().unwrap_or(shown_url);
    let message = endpoint.redact(&format!("GET {path}: {message}"));
    if timeout {
        ProviderError::Timeout(message)
    } else {
        ProviderError::Transport(message)
    }
}

/// Removes the key from any text a provider or parser put into an error.
fn scrub(error: ProviderError, endpoint: &Endpoint) -> ProviderError {
    match error {
        ProviderError::Reported(m) => ProviderError::Reported(endpoint.redact(&m)),
        ProviderError::Malformed(m) => ProviderError::Malformed(endpoint.redact(&m)),
        other => other,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (relative to `now`); past dates mean 0.
pub fn parse_retry_after(
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests;

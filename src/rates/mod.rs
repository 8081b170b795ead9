//! Exchange rates: where they come from and how they are read. This module owns the provider
//! side (which providers exist, how their payloads are parsed and validated, how they are
//! fetched with retries, circuit breakers and failover) and the ECB CSV files used to load
//! history; storing snapshots change-only ([`store`], [`service::fetch_and_store`],
//! [`import`]) and reading them back (latest from memory through [`cache`], as of an instant,
//! series, conversion quotes) over HTTP ([`routes`]).

// Everything public here is called from other modules; keep it documented.
#![warn(missing_docs)]

pub mod cache;
pub mod client;
pub mod consensus;
pub mod ecb_csv;
pub mod fetch;
pub mod health;
pub mod import;
pub mod jobs;
pub mod pricing;
pub mod provenance;
pub mod provider;
pub mod quote_json;
pub mod routes;
pub mod series;
pub mod service;
pub mod store;
pub mod view;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::currencies::events::{CurrencyChange, CurrencyListener};
use crate::redis_client::Redis;
use crate::replica::ReadPool;
use crate::settings::RatesSettings;
use crate::state::AppState;
use crate::tasks::{TaskRegistry, Tasks};

pub use service::{FetchReport, RateQuote, RatesError, fetch_and_store, quote};

/// What the rates use cases run with: the pool, Redis (to announce new rates to other
/// instances), the settings, the clock, and this process's cache and provider client. Cheap to
/// clone; routes get it as `web::Data<Rates>`, the `fetch_rates` job as its context.
#[derive(Clone)]
pub struct Rates {
    /// PostgreSQL, where snapshots are stored.
    pub db: PgPool,
    /// Where series (`GET /rates/series`, the monitor's chart) read: the replica when current.
    pub reads: ReadPool,
    /// Redis, for the `rates:version` counter.
    pub redis: Redis,
    /// `rates.*`.
    pub settings: Arc<RatesSettings>,
    /// `conversions.*` rules every price follows ([`pricing::Pricer`]): the bounds of an
    /// amount and the stale-rate policy.
    pub rules: Arc<pricing::PricingRules>,
    /// Now, for staleness and fetch times.
    pub clock: Clock,
    /// The latest-rates cache and provider client of this process.
    pub runtime: Arc<RatesRuntime>,
    /// `tasks.schedule.fetch_rates`: when the next fetch comes, as an outage's log line says.
    pub fetch_schedule: crate::settings::CronExpression,
    /// Partners' markup schedules, memoised in this process (shared with the markup routes,
    /// which say when one changed).
    pub schedules: crate::markups::Schedules,
}

impl Rates {
    /// The rates handle of a process, with a fresh (empty) cache.
    pub fn new(
        reads: ReadPool,
        redis: Redis,
        clock: Clock,
        settings: RatesSettings,
        rules: pricing::PricingRules,
        fetch_schedule: crate::settings::CronExpression,
    ) -> Self {
        // From the primary: a schedule read from a replica that lags could be memoised after
        // the change that replaced it was announced.
        let schedules = crate::markups::Schedules::new(
            reads.primary().clone(),
            redis.clone(),
            rules.default_markup_bps,
        );
        Self {
            schedules,
            db: reads.primary().clone(),
            reads,
            redis,
            settings: Arc::new(settings),
            rules: Arc::new(rules),
            clock,
            runtime: Arc::default(),
            fetch_schedule,
        }
    }

    /// Seconds until the next scheduled fetch (at least 1): how long a client should wait
    /// before asking again for a rate that only a fetch can bring.
    pub fn secs_to_next_fetch(&self) -> u64 {
        let now = self.clock.now();
        self.fetch_schedule
            .cron()
            .find_next_occurrence(&now, false)
            .ok()
            .and_then(|next| u64::try_from((next - now).num_seconds()).ok())
            .unwrap_or(60)
            .max(1)
    }

    /// The rates handle of an application's state.
    pub fn of(state: &AppState) -> Self {
        Self::new(
            state.reads.clone(),
            state.redis.clone(),
            state.clock.clone(),
            state.settings.rates.clone(),
            pricing::PricingRules::from_settings(
                &state.settings.conversions,
                &state.settings.pricing,
            ),
            state.settings.tasks.schedule.fetch_rates.clone(),
        )
    }
}

/// Per-process rates machinery: the latest-rates cache and the provider client (built once from
/// settings, so its circuit breakers persist across fetches).
#[derive(Debug, Default)]
pub struct RatesRuntime {
    /// The in-memory latest rates.
    pub cache: cache::LatestRatesCache,
    client: tokio::sync::OnceCell<Arc<client::RatesClient>>,
    sources: tokio::sync::OnceCell<Arc<Vec<Source>>>,
    /// Set once this process has said whether the provider answered its first fetch.
    first_fetch_reported: std::sync::atomic::AtomicBool,
}

impl RatesRuntime {
    /// The provider client, built from `rates.*` settings on first use, on the application's
    /// clock.
    pub async fn client(
        &self,
        settings: &RatesSettings,
        clock: &crate::clock::Clock,
    ) -> anyhow::Result<Arc<client::RatesClient>> {
        self.client
            .get_or_try_init(|| async {
                client::RatesClient::from_settings(settings)
                    .map(|client| Arc::new(client.with_clock(clock.clone())))
            })
            .await
            .cloned()
    }

    /// One client per `rates.sources` entry (each its own breaker), built on first use.
    pub async fn sources(
        &self,
        settings: &RatesSettings,
        clock: &crate::clock::Clock,
    ) -> anyhow::Result<Arc<Vec<Source>>> {
        self.sources
            .get_or_try_init(|| async {
                let config = client::ClientConfig::from_settings(settings);
                settings
                    .sources
                    .iter()
                    .map(|source| {
                        let key = settings
                            .source_keys
                            .0
                            .get(&source.name)
                            .cloned()
                            .filter(|_| source.kind.needs_api_key());
                        let endpoint = client::Endpoint::new(
                            source.kind,
                            source.url.as_ref().map(crate::settings::HttpUrl::as_str),
                            key,
                        );
                        let client = client::RatesClient::new(vec![endpoint], config.clone())?
                            .with_clock(clock.clone());
                        Ok(Source {
                            name: source.name.clone(),
                            client,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// True the first time it is called in this process: the first fetch's outcome is worth a
    /// start-up summary line, later ones are routine.
    pub fn first_fetch(&self) -> bool {
        !self
            .first_fetch_reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }
}

/// One named source of `rates.sources` and its client.
#[derive(Debug)]
pub struct Source {
    /// Its name in `rates.sources`.
    pub name: String,
    /// Its client: one endpoint, its own retries and breaker.
    pub client: client::RatesClient,
}

/// A currency was disabled, retired or renamed: every instance drops its cached view of the
/// supported currencies and latest rates.
pub async fn currencies_changed(rates: &Rates) {
    cache::announce_new_rates(rates).await;
}

/// Asks for a fresh fetch soon (a currency was added or enabled) instead of waiting for the
/// next scheduled run: records a `fetch_rates` run in the queue. If the queue cannot take it,
/// the next scheduled fetch brings the rates; the request itself never fails for it.
pub async fn request_refresh(rates: &Rates, tasks: &Tasks, registry: &TaskRegistry, reason: &str) {
    cache::announce_new_rates(rates).await;
    match crate::tasks::enqueue_job(tasks, registry, &jobs::FetchRates::default()).await {
        Ok(run) => tracing::info!(reason, run_id = %run.id, "fresh rates requested"),
        Err(e) => tracing::warn!(reason, error = %e, "could not request fresh rates"),
    }
}

/// Listens to the currencies module's announcements: a currency that became usable asks for a
/// fresh fetch, any other change drops the cached currencies and rates everywhere.
pub struct CurrencyWatcher {
    /// The rates of this process.
    pub rates: Rates,
    /// Where the fetch run is recorded.
    pub tasks: Tasks,
    /// The task registry (to enqueue `fetch_rates`).
    pub registry: Arc<TaskRegistry>,
}

impl CurrencyListener for CurrencyWatcher {
    fn currency_changed<'a>(&'a self, change: &'a CurrencyChange) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match change {
                CurrencyChange::Added(_) => {
                    request_refresh(&self.rates, &self.tasks, &self.registry, "currency added")
                        .await
                }
                CurrencyChange::Enabled(_) => {
                    request_refresh(&self.rates, &self.tasks, &self.registry, "currency enabled")
                        .await
                }
                CurrencyChange::Changed(_) | CurrencyChange::Removed(_) => {
                    currencies_changed(&self.rates).await
                }
            }
        })
    }
}

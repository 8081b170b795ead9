//! Typed configuration, layered: `settings/base.toml`, then `settings/{APP_ENV}.toml`, then
//! environment variables (`CCS__SECTION__KEY`, plus the conventional `DATABASE_URL`, `REDIS_URL`
//! and `JWT_SECRET`). Everything that needs configuration receives a `Settings` (or a part of it);
//! nothing else reads the environment.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::currency_code::CurrencyCode;

mod layers;
mod values;
pub use layers::{Origin, edit_distance, nearest};
pub use values::{
    CronExpression, FallbackProvider, HttpUrl, LogFilter, ProviderKind, RateSource, SourceKeys,
    UnknownProvider,
};

/// The secret shipped in `settings/local.toml` so that `make run` works out of the box.
/// Refused in production so that nobody deploys it by accident.
pub const LOCAL_DEV_JWT_SECRET: &str = "local-development-secret-do-not-use-in-production!";

/// Where the service runs; selects `settings/{environment}.toml` and a few defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Local,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(Environment::Local),
            "test" => Ok(Environment::Test),
            "production" | "prod" => Ok(Environment::Production),
            other => anyhow::bail!(
                "APP_ENV: unknown environment `{other}` (expected local, test or production)"
            ),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Filled in from `APP_ENV`, not from the files.
    #[serde(skip, default = "default_env")]
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub rates: RatesSettings,
    pub conversions: ConversionSettings,
    /// Rate locks: the spread each lock duration costs.
    pub quotes: QuoteSettings,
    /// Partner pricing: the markup of a partner without its own.
    pub pricing: PricingSettings,
    pub tasks: TaskSettings,
    pub metrics: MetricsSettings,
    /// Webhook delivery: retry schedule, timeout, which targets may be called.
    pub webhooks: WebhookSettings,
    /// Request limits per partner.
    pub limits: LimitSettings,
    /// Partners' usage counts.
    pub usage: UsageSettings,
}

/// Partners' usage counts (`GET /api/v1/usage`).
#[derive(Debug, Clone, Deserialize)]
pub struct UsageSettings {
    /// Days of usage kept; older days are deleted.
    pub retention_days: u32,
    /// How often each instance writes the counts it buffered, in milliseconds (100 to 4000, so
    /// a request is visible in the usage within 5 seconds).
    pub flush_interval_ms: u64,
}

/// Request limits per partner (`access`), shared by every instance through Redis.
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// Requests a partner may make per minute, unless an admin set its own limit
    /// (`PUT /api/v1/partners/{id}/limits`). A full minute's worth may come in one burst.
    pub requests_per_minute: u32,
    /// Partners whose limit is at least this many requests per minute have their budget taken
    /// from Redis in leases: an instance takes several requests in one round trip and admits
    /// them from memory for at most `lease_hold_ms`. Below it, every request asks Redis.
    pub lease_from_requests_per_minute: u32,
    /// The longest an instance holds requests it took ahead, in milliseconds (at most 1000);
    /// 0 takes none ahead. To stay within the limit whatever the timing, a leasing partner's
    /// burst is smaller by what this long refills (a 600th of it at 100 ms).
    pub lease_hold_ms: u64,
}

/// Where the Prometheus `/metrics` endpoint is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsExposure {
    /// Not served at all.
    Off,
    /// On the API's own listener, beside `/health` (the default in `local` and `test`).
    Api,
    /// On a listener of its own at `metrics.address`, so that the public port never serves it
    /// (the default in `production`).
    Separate,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `off`, `api` or `separate`.
    pub expose: MetricsExposure,
    /// Listen address (`host:port`) of the separate metrics listener; port 0 picks a free one.
    pub address: String,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`,
    /// wherever it is served (`CCS__METRICS__BEARER_TOKEN`); empty for none.
    #[serde(deserialize_with = "values::optional_secret")]
    pub bearer_token: Option<SecretString>,
}

impl MetricsSettings {
    /// Where the separate listener binds in `environment`, with the reason when that is not
    /// `address`: in production, `/metrics` without a bearer token is served to this machine
    /// only (loopback, on `address`'s port), whatever interface `address` names, since its
    /// counters describe our traffic to whoever reaches the port.
    pub fn listen_address(
        &self,
        environment: Environment,
    ) -> anyhow::Result<(std::net::SocketAddr, Option<&'static str>)> {
        let configured: std::net::SocketAddr = self.address.parse().map_err(|_| {
            anyhow::anyhow!(
                "metrics.address: `{}` is not host:port (e.g. 127.0.0.1:9464)",
                self.address
            )
        })?;
        if environment == Environment::Production
            && self.bearer_token.is_none()
            && !configured.ip().is_loopback()
        {
            let loopback =
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), configured.port());
            return Ok((
                loopback,
                Some(
                    "metrics.bearer_token is unset: production serves /metrics without a token on loopback only; set CCS__METRICS__BEARER_TOKEN to serve it on metrics.address",
                ),
            ));
        }
        Ok((configured, None))
    }
}

impl fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("expose", &self.expose)
            .field("address", &self.address)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[set]"))
            .finish()
    }
}

fn default_env() -> Environment {
    Environment::Local
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to bind; `127.0.0.1` locally, `0.0.0.0` in containers.
    pub host: String,
    /// TCP port; 0 picks a free one (tests).
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Number of actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds granted to in-flight requests and jobs on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Reverse proxies (CIDRs, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` names the client.
    /// Empty (the default): the socket peer is the client and the header is ignored, because
    /// any client can write it. Set it to the proxy's range when the service sits behind one,
    /// or every client shares the proxy's per-IP login limit.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve Swagger UI at `/docs`. On in local and test; off in production (an interactive
    /// console on the public bind invites probing; use it locally instead).
    pub swagger_ui: bool,
    /// Serve the OpenAPI document at `/api-docs/openapi.json` (Swagger UI needs it). On in local
    /// and test; off in production unless partners fetch the contract from the service — it
    /// describes only the public API, but every route it lists is one more thing to probe.
    pub openapi_document: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; the database is created on start if it does not exist.
    pub url: SecretString,
    /// Upper bound of pooled connections per process.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// Upper bound of a second pool of connections to `url`, per process, for the reads that
    /// may be a moment behind (below) while they run on the primary: no replica, or it lags or
    /// is down. Their sessions plan generically and are read-only (docs/scaling.md), and they
    /// never take the money path's connections. A process may so hold up to
    /// `max_connections + read_max_connections` connections to the primary.
    pub read_max_connections: u32,
    /// A streaming read replica of `url` (same database name), for the reads that may be a
    /// moment behind: history lists, CSV exports, summaries, reports, rate series and the
    /// monitor's charts. Empty: none, everything reads the primary.
    pub replica_url: SecretString,
    /// How far behind (seconds of unreplayed WAL) the replica may be before those reads go to
    /// the primary instead. An idle primary is no lag (docs/scaling.md, "Read replica").
    pub replica_max_lag_secs: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Redis URL (`redis://host:port/db`).
    pub url: SecretString,
    /// Prepended to every key the service writes, so that several deployments (or tests) share
    /// one Redis without colliding.
    pub key_prefix: String,
    /// Upper bound of pooled connections per process.
    pub pool_size: usize,
    /// Timeout for one Redis command, in milliseconds.
    pub timeout_ms: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key for access tokens; at least 32 bytes. Set it with `JWT_SECRET`.
    pub jwt_secret: SecretString,
    /// `iss` claim written and required.
    pub issuer: String,
    /// `aud` claim written and required.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Whether `POST /api/v1/auth/register` is open.
    pub registration_enabled: bool,
    /// Failed logins allowed per account (and per client IP, times four) within the window.
    pub max_failed_logins: u32,
    /// Window of the login throttle, in seconds.
    pub login_window_secs: u64,
    /// How long a user's enabled/disabled state is cached before it is re-read, in seconds.
    pub user_status_cache_secs: u64,
    /// Longest a monitor session lasts from its login, in seconds, however active the admin
    /// is. Within it, each page renews the session's token, so it ends only after
    /// `access_token_ttl_secs` without a request (the self-refreshing pages count).
    pub monitor_session_max_secs: u64,
    /// Days a refresh token (an API or monitor session's renewal) is kept after it expired,
    /// then `prune_expired_data` deletes it; an expired token is refused either way.
    pub session_retention_days: u32,
    /// Live client credentials (`POST /api/v1/credentials`) a partner may hold at once; revoked
    /// ones do not count.
    pub max_credentials_per_partner: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` for people, `json` (one object per line) for log shippers.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info,sqlx=warn`; `RUST_LOG` wins when set.
    pub level: LogFilter,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesSettings {
    /// Primary provider: `frankfurter`, `ecb`, `openexchangerates` or `exchangerate_api`.
    pub provider: ProviderKind,
    /// Base URL of the primary provider (tests and mirrors point it elsewhere); empty for the
    /// provider's public one.
    #[serde(deserialize_with = "values::optional_url")]
    pub provider_url: Option<HttpUrl>,
    /// API key of the primary provider, when it needs one (`openexchangerates`,
    /// `exchangerate_api`); empty for none. Set it with `CCS__RATES__API_KEY`.
    #[serde(deserialize_with = "values::optional_secret")]
    pub api_key: Option<SecretString>,
    /// Providers tried in order when the primary fails, as `kind` or `kind=url`.
    #[serde(deserialize_with = "values::fallbacks")]
    pub fallbacks: Vec<FallbackProvider>,
    /// Age in seconds after which the latest stored rates count as stale.
    pub max_age_secs: u64,
    /// Currency the provider is asked to quote against (its pivot).
    pub base: CurrencyCode,
    /// How long a cached read of the latest rates lives in Redis, in seconds.
    pub cache_ttl_secs: u64,
    /// Connect timeout for provider requests, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Total timeout of one provider request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per provider before failing over.
    pub max_attempts: u32,
    /// First backoff delay in milliseconds; doubles per attempt with full jitter.
    pub backoff_base_ms: u64,
    /// Consecutive failures that open a provider's circuit breaker.
    pub breaker_threshold: u32,
    /// Seconds a tripped breaker stays open before one trial request.
    pub breaker_cooldown_secs: u64,
    /// Named sources asked concurrently on every fetch, each `name=kind@url` (or `name=kind`
    /// for the kind's public URL), each with its own timeout, retries and breaker; the rates
    /// stored are their consensus (`rates.consensus`). Empty: the one source is the
    /// `rates.provider` chain with its `rates.fallbacks`. In the environment one variable:
    /// `CCS__RATES__SOURCES="a=frankfurter@https://…,b=ecb"`.
    #[serde(deserialize_with = "values::sources")]
    pub sources: Vec<RateSource>,
    /// API keys of the sources that need one, `name=KEY` each
    /// (`CCS__RATES__SOURCE_KEYS="oxr=KEY,…"`). Never printed.
    pub source_keys: SourceKeys,
    /// Days a source's fetch record (`rate_source_fetches`: outcome, latency, breaker, shown
    /// on the monitor) is kept before `prune_expired_data` deletes it.
    pub source_fetch_retention_days: u32,
    /// How the sources' values become one rate per currency.
    pub consensus: ConsensusSettings,
}

/// `rates.consensus.*`: when sources agree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSettings {
    /// A source's value further than this many basis points from the median of all the
    /// sources' values for a currency is excluded (so is one beyond the MAD bound).
    pub max_deviation_bps: u32,
    /// Agreeing values a currency needs for a new consensus (1 when only one source is
    /// configured). Below it the currency keeps its last consensus until that is older than
    /// `rates.max_age_secs`.
    pub min_sources: u32,
}

impl RatesSettings {
    /// Agreeing values a currency needs: `rates.consensus.min_sources`, or 1 with one source.
    pub fn quorum(&self) -> usize {
        if self.sources.len() <= 1 {
            1
        } else {
            self.consensus.min_sources as usize
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaleRatePolicy {
    /// Refuse conversions on stale rates (422).
    Refuse,
    /// Convert, and flag the conversion as made on a stale rate.
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionSettings {
    /// Seconds a conversion stays `temporary` before it may become `permanent`.
    pub holding_period_secs: u64,
    /// Largest amount accepted in one conversion, in units of the source currency. Written as a
    /// decimal string (`"1000000000"`), parsed once at start-up.
    #[serde(deserialize_with = "decimal_from_text")]
    pub max_amount: bigdecimal::BigDecimal,
    /// What to do when the newest rate is older than `rates.max_age_secs`.
    pub stale_rates: StaleRatePolicy,
    /// How long an `Idempotency-Key` is remembered, in seconds: the keys of every idempotent
    /// POST (conversions, batches, quotes, webhook endpoints), kept under this name since it
    /// came with conversions.
    pub idempotency_ttl_secs: u64,
    /// Seconds an idempotency key is kept past its TTL before `prune_expired_data` deletes it
    /// (at least a day: an expired key is already free to reuse; the row only helps support
    /// answer "what did this key do yesterday").
    pub idempotency_retention_secs: u64,
    /// Smallest amount accepted per source currency, as decimal strings
    /// (`[conversions.min_amounts] JPY = "100"`, or `CCS__CONVERSIONS__MIN_AMOUNTS__JPY=100`). A
    /// currency not listed goes down to one minor unit; a result that rounds to zero is refused
    /// whatever the minimum.
    // The one serde default among the settings: a map chosen by the operator is empty until it
    // is given entries, and `base.toml`'s empty table is dropped when the layers are merged.
    #[serde(default, deserialize_with = "min_amounts_from_text")]
    pub min_amounts: std::collections::HashMap<CurrencyCode, bigdecimal::BigDecimal>,
    /// Monthly partitions of `conversions` that ended more than this many whole months ago are
    /// detached by `maintain_partitions` (never dropped: each stays a table of its own, for
    /// archiving). 0, the default: never; conversions are money history.
    pub detach_partitions_after_months: u32,
    /// Group commit of `POST /conversions` at the rate in force: the most conversions written
    /// by one statement and one commit (1 to 1000; 1 turns grouping off: every conversion is a
    /// statement of its own, as before group commit).
    pub group_commit_max_rows: u32,
    /// Microseconds a group may wait for more conversions after its first one arrived, and only
    /// while another group's statement is in flight (alone, a conversion is written at once);
    /// at most 100000 (0: never wait, a group is whatever queued while the others were busy).
    pub group_commit_max_wait_micros: u64,
    /// Group statements of one process in flight at once (1 to 64):
    /// conversions arriving while every one is busy queue and leave together as the next group.
    /// Each writes on a connection of its own to the primary (generic plans, `TCP_NODELAY`:
    /// `db::group_writer_pool`), beside the `database.max_connections` of the pool.
    pub group_commit_max_in_flight: u32,
}

impl ConversionSettings {
    /// The bounds of one amount, for the pricing pipeline.
    pub fn amount_bounds(&self) -> crate::money::Bounds {
        crate::money::Bounds {
            max: self.max_amount.clone(),
            min: self.min_amounts.clone(),
        }
    }
}

/// Partner pricing (`pricing`). Admins set each partner's markup
/// (`PUT /api/v1/partners/{id}/pricing`); this is what a partner without one pays.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingSettings {
    /// Basis points below the reference rate for a partner without a markup of its own (0 in
    /// every shipped environment: a price is the reference rate unless the operator says so).
    pub default_markup_bps: u32,
}

/// Rate locks (`quotes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteSettings {
    /// Spread per lock duration, in basis points (1 bp = 0.01 %) below the reference rate.
    pub spread_bps: SpreadSettings,
    /// Rate locks (any lock but `none`) one partner may hold open at once; the next is refused
    /// with 429 until one is used or expires. A lock is an option the service writes: the cap
    /// bounds how many a partner can hold.
    pub max_open_locks: u32,
    /// Total notional of one partner's open rate locks, in `quotes.notional_currency`, valued
    /// at the reference rate when each lock was made. Decimal string.
    #[serde(deserialize_with = "decimal_from_text")]
    pub max_open_notional: bigdecimal::BigDecimal,
    /// Currency in which open locks' notional is summed and capped.
    pub notional_currency: CurrencyCode,
    /// Days a quote is kept after it expired (`prune_expired_data`). A quote a conversion was
    /// made on is kept with the conversion, whatever its age.
    pub retention_days: u32,
}

/// Spread in basis points per lock duration (`quotes.spread_bps.<lock>`): the longer the
/// partner holds the option, the more it costs. Each must be below 10000 (a rate stays positive).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpreadSettings {
    /// Indicative quote, nothing locked.
    pub none: u32,
    /// Locked for five minutes.
    pub five_minutes: u32,
    /// Locked for an hour.
    pub hour: u32,
    /// Locked for a day.
    pub day: u32,
}

impl SpreadSettings {
    /// The dearest lock's spread: what a markup must leave room for, so that markup + lock
    /// stays under 10,000 bp and a rate stays positive.
    pub fn dearest(&self) -> u32 {
        [self.none, self.five_minutes, self.hour, self.day]
            .into_iter()
            .max()
            .unwrap_or(0)
    }

    /// The largest markup that leaves a positive rate with every lock.
    pub fn max_markup_bps(&self) -> u32 {
        9_999u32.saturating_sub(self.dearest())
    }
}

/// Webhooks (Standard Webhooks) and their delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Call endpoints on loopback, private, link-local, CGNAT, unique-local or metadata
    /// addresses. Off in production: a partner's URL must not reach our own network (SSRF).
    pub allow_private_targets: bool,
    /// Accept `http://` endpoint URLs (only `https://` otherwise).
    pub allow_http: bool,
    /// Seconds one delivery attempt may take, connect to last byte.
    pub timeout_secs: u64,
    /// Delays in seconds before each retry after a failed attempt; a delivery is dead after
    /// `1 + len` failed attempts. The default spreads them over about a day.
    pub retry_schedule_secs: Vec<u64>,
    /// Seconds the previous secret keeps signing after a rotation.
    pub secret_overlap_secs: u64,
    /// Most deliveries one claim takes (never more than the dispatcher's free slots).
    pub dispatch_batch: u32,
    /// Deliveries one dispatcher sends concurrently (its slots).
    pub concurrency: usize,
    /// Attempts in flight to one endpoint at most, across instances: a slow receiver holds
    /// this many slots, not all of them.
    pub max_in_flight_per_endpoint: u32,
    /// Attempts in flight for one partner at most, across instances and its endpoints; below
    /// `concurrency`, so one partner's slow receivers always leave slots for the others.
    pub max_in_flight_per_partner: u32,
    /// Failed attempts in a row (non-2xx, timeout, refused) after which an endpoint's breaker
    /// opens: its deliveries wait `breaker_cooldown_secs` (postponed, not failed), then one
    /// trial attempt closes it (2xx) or opens it again.
    pub breaker_failures: u32,
    /// Seconds an endpoint whose breaker opened is paused.
    pub breaker_cooldown_secs: u64,
    /// Live endpoints one partner may have.
    pub max_endpoints_per_partner: u32,
    /// Test pings (`POST /webhooks/{id}/test`) one endpoint may get per minute, counted across
    /// instances (GCRA: the whole minute's worth at once, then one per `60 / n` seconds); 429
    /// `/problems/webhook-test-limit` beyond.
    pub test_pings_per_minute: u32,
    /// Days an event and its deliveries are kept after the event, once none of its
    /// deliveries is still pending (`prune_expired_data`).
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Cron expression with seconds for the rates fetch.
    pub fetch_rates: CronExpression,
    /// Cron expression with seconds for finalizing conversions.
    pub finalize_conversions: CronExpression,
    /// Cron expression with seconds for the retention job (`prune_expired_data`).
    pub prune_expired_data: CronExpression,
    /// Cron expression with seconds for the webhook dispatcher (sends due deliveries).
    pub deliver_webhooks: CronExpression,
    /// Cron expression with seconds for recording ended rate locks (`quote.expired`).
    pub expire_quotes: CronExpression,
    /// Cron expression with seconds for `maintain_partitions`: the monthly partitions of
    /// `conversions` created ahead, old ones detached when
    /// `conversions.detach_partitions_after_months` says so.
    pub maintain_partitions: CronExpression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    pub schedule: ScheduleSettings,
    /// Worker tasks per process.
    pub workers: usize,
    /// Seconds after which an unacknowledged message is handed to another worker (Redis).
    pub visibility_timeout_secs: u64,
    /// Seconds a running run's lease lasts in PostgreSQL; its worker renews it every third of
    /// that while the job runs, and stops the job if it cannot before it ends. A run whose
    /// lease lapsed (its worker lost PostgreSQL, stalled or died) is taken over by the
    /// reconciler and tried again, so a lost connection holds its task up for about this long,
    /// not for the visibility timeout.
    pub lease_secs: u64,
    /// Attempts before a run is declared dead.
    pub max_attempts: u32,
    /// First retry delay in seconds; doubles per attempt with full jitter.
    pub retry_base_secs: u64,
    /// Days a finished run record is kept by `prune_expired_data`. The newest failed and dead
    /// runs the monitor lists under "Recent failures" are kept however old they are.
    pub retention_days: u32,
    /// Rows one retention statement deletes: each batch is its own short transaction, so a
    /// prune never holds locks long enough to slow the writes beside it.
    pub prune_batch_size: u32,
    /// Milliseconds the retention job rests between two full batches: each batch's WAL is
    /// flushed ahead of the commits beside it, so a prune that never rests slows every
    /// conversion committed meanwhile (docs/scaling.md, "Retention").
    pub prune_batch_pause_ms: u64,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are SecretStrings, whose Debug prints a placeholder; list the parts that matter.
        f.debug_struct("Settings")
            .field("environment", &self.environment)
            .field("server", &self.server)
            .field("log", &self.log)
            .field("rates.provider", &self.rates.provider)
            .field("rates.provider_url", &self.rates.provider_url)
            .field("tasks", &self.tasks)
            .field("conversions", &self.conversions)
            .field("quotes", &self.quotes)
            .field("pricing", &self.pricing)
            .field("metrics", &self.metrics)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// Reads the layered settings from `dir` for `environment`, with the process environment on
/// top. `env` is injected so that tests can layer without touching the real environment.
pub fn load_from(
    dir: &Path,
    environment: Environment,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Settings> {
    Ok(read(dir, environment, env)?.0)
}

/// The effective settings, one `key = value  # origin` line each (origin: `default` for
/// `base.toml`, `file` for `{APP_ENV}.toml`, `environment` with the variable's name), secrets
/// redacted. Loads them first, so invalid settings fail here as they would at start.
pub fn describe_from(
    dir: &Path,
    environment: Environment,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<String> {
    let (_, layers, merged) = read(dir, environment, env)?;
    Ok(layers.describe(&merged))
}

fn read(
    dir: &Path,
    environment: Environment,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<(Settings, layers::Layers, config::Config)> {
    let env: std::collections::HashMap<String, String> = env.into_iter().collect();
    let base = dir.join("base.toml");
    if !base.is_file() {
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "?".into());
        anyhow::bail!(
            "settings file {} not found. The settings folder is read relative to the working \
             directory ({cwd}): run from the project root, or set CCS_SETTINGS_DIR to the \
             folder holding base.toml (e.g. CCS_SETTINGS_DIR=/path/to/repo/settings)",
            base.display()
        );
    }
    let env_file = dir.join(format!("{}.toml", environment.as_str()));
    let layers = layers::Layers::read(dir, &env_file, &env)?;
    layers.check_known_keys()?;
    let mut builder = config::Config::builder()
        .add_source(config::File::from(base).required(true))
        .add_source(config::File::from(env_file).required(false))
        .add_source(
            config::Environment::with_prefix("CCS")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("rates.fallbacks")
                .with_list_parse_key("rates.sources")
                .with_list_parse_key("rates.source_keys")
                .with_list_parse_key("server.trusted_proxies")
                .with_list_parse_key("webhooks.retry_schedule_secs")
                .source(Some(
                    env.iter()
                        .filter(|(k, _)| k.starts_with("CCS__"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
        );
    for (var, key) in layers::CONVENTIONAL {
        if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
            builder = builder.set_override(key, value.clone())?;
        }
    }
    let merged = builder
        .build()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let mut settings: Settings = merged
        .clone()
        .try_deserialize()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    settings.environment = environment;
    settings.validate()?;
    Ok((settings, layers, merged))
}

/// Reads the settings for the running process: `APP_ENV` (default `local`), files from
/// `CCS_SETTINGS_DIR` (default `./settings`), and the process environment.
pub fn load() -> anyhow::Result<Settings> {
    let environment: Environment = std::env::var("APP_ENV")
        .unwrap_or_else(|_| "local".into())
        .parse()?;
    let dir = std::env::var("CCS_SETTINGS_DIR").unwrap_or_else(|_| "settings".into());
    load_from(Path::new(&dir), environment, std::env::vars())
}

/// [`describe_from`] for the running process, as [`load`] reads it.
pub fn describe() -> anyhow::Result<String> {
    let environment: Environment = std::env::var("APP_ENV")
        .unwrap_or_else(|_| "local".into())
        .parse()?;
    let dir = std::env::var("CCS_SETTINGS_DIR").unwrap_or_else(|_| "settings".into());
    let lines = describe_from(Path::new(&dir), environment, std::env::vars())?;
    Ok(format!(
        "# Effective settings for APP_ENV={} from {dir}/ and the environment; secrets redacted.\n{lines}",
        environment.as_str()
    ))
}

impl Settings {
    /// Checks what serde cannot: ranges and secrets. Each message names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.metrics.expose == MetricsExposure::Separate
            && self
                .metrics
                .address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            anyhow::bail!(
                "metrics.address: `{}` is not host:port (e.g. 127.0.0.1:9464)",
                self.metrics.address
            );
        }
        if self
            .metrics
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            anyhow::bail!("metrics.bearer_token: at least 16 characters, or unset it for no token");
        }
        if self.environment == Environment::Production
            && self.metrics.expose == MetricsExposure::Api
            && self.metrics.bearer_token.is_none()
        {
            anyhow::bail!(
                "metrics.expose: `api` in production serves /metrics on the public port; set CCS__METRICS__BEARER_TOKEN, or use `separate` (loopback only without a token) or `off`"
            );
        }
        let secret = self.auth.jwt_secret.expose_secret();
        if secret.len() < 32 {
            anyhow::bail!(
                "auth.jwt_secret: must be at least 32 bytes (set JWT_SECRET or CCS__AUTH__JWT_SECRET)"
            );
        }
        if self.environment == Environment::Production {
            if secret == LOCAL_DEV_JWT_SECRET {
                anyhow::bail!(
                    "auth.jwt_secret: the local development secret is refused in production; set JWT_SECRET to a random string of at least 32 bytes"
                );
            }
            let distinct: std::collections::HashSet<char> = secret.chars().collect();
            if distinct.len() < 10 {
                anyhow::bail!(
                    "auth.jwt_secret: too weak for production (fewer than 10 distinct characters); use a random string"
                );
            }
        }
        if self.server.swagger_ui && !self.server.openapi_document {
            anyhow::bail!(
                "server.swagger_ui: Swagger UI loads the OpenAPI document; set server.openapi_document = true too"
            );
        }
        if self.server.body_limit_bytes < 1024 {
            anyhow::bail!("server.body_limit_bytes: must be at least 1024");
        }
        if !self.database.replica_url.expose_secret().is_empty() {
            crate::db::replica_pool(&self.database)?;
        }
        if self.database.max_connections == 0 {
            anyhow::bail!("database.max_connections: must be at least 1");
        }
        if !(1..=1000).contains(&self.conversions.group_commit_max_rows) {
            anyhow::bail!("conversions.group_commit_max_rows: must be 1 to 1000");
        }
        if self.conversions.group_commit_max_wait_micros > 100_000 {
            anyhow::bail!("conversions.group_commit_max_wait_micros: at most 100000 (0.1 s)");
        }
        // The writers have connections of their own (`db::group_writer_pool`), so the pool's
        // size is no bound; PostgreSQL's `max_connections` is, with every instance's writers
        // counted (docs/scaling.md), and more than a few dozen would only queue there.
        if !(1..=64).contains(&self.conversions.group_commit_max_in_flight) {
            anyhow::bail!("conversions.group_commit_max_in_flight: must be 1 to 64");
        }
        if self.database.read_max_connections == 0 {
            anyhow::bail!("database.read_max_connections: must be at least 1");
        }
        if self.redis.pool_size == 0 {
            anyhow::bail!("redis.pool_size: must be at least 1");
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            anyhow::bail!(
                "auth.access_token_ttl_secs / auth.refresh_token_ttl_secs: must be positive"
            );
        }
        for (key, value) in [
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            ("auth.leeway_secs", self.auth.leeway_secs),
            (
                "auth.monitor_session_max_secs",
                self.auth.monitor_session_max_secs,
            ),
            (
                "conversions.idempotency_ttl_secs",
                self.conversions.idempotency_ttl_secs,
            ),
            (
                "conversions.holding_period_secs",
                self.conversions.holding_period_secs,
            ),
            ("rates.max_age_secs", self.rates.max_age_secs),
            ("rates.cache_ttl_secs", self.rates.cache_ttl_secs),
            (
                "rates.breaker_cooldown_secs",
                self.rates.breaker_cooldown_secs,
            ),
            ("auth.login_window_secs", self.auth.login_window_secs),
            (
                "auth.user_status_cache_secs",
                self.auth.user_status_cache_secs,
            ),
            (
                "server.shutdown_timeout_secs",
                self.server.shutdown_timeout_secs,
            ),
            ("webhooks.timeout_secs", self.webhooks.timeout_secs),
            (
                "webhooks.breaker_cooldown_secs",
                self.webhooks.breaker_cooldown_secs,
            ),
            (
                "webhooks.secret_overlap_secs",
                self.webhooks.secret_overlap_secs,
            ),
            (
                "tasks.visibility_timeout_secs",
                self.tasks.visibility_timeout_secs,
            ),
            ("tasks.retry_base_secs", self.tasks.retry_base_secs),
            ("tasks.lease_secs", self.tasks.lease_secs),
            (
                "conversions.idempotency_retention_secs",
                self.conversions.idempotency_retention_secs,
            ),
        ]
        .into_iter()
        .chain(
            self.webhooks
                .retry_schedule_secs
                .iter()
                .map(|&secs| ("webhooks.retry_schedule_secs", secs)),
        ) {
            if value > MAX_SETTING_SECS {
                anyhow::bail!("{key}: {value} seconds is more than a century; use a smaller value");
            }
        }
        if self.conversions.max_amount <= bigdecimal::BigDecimal::default() {
            anyhow::bail!("conversions.max_amount: must be positive");
        }
        let spreads = &self.quotes.spread_bps;
        for (key, bps) in [
            ("quotes.spread_bps.none", spreads.none),
            ("quotes.spread_bps.five_minutes", spreads.five_minutes),
            ("quotes.spread_bps.hour", spreads.hour),
            ("quotes.spread_bps.day", spreads.day),
        ] {
            if bps >= 10_000 {
                anyhow::bail!("{key}: {bps} basis points would leave no rate; use 0 to 9999");
            }
        }
        if !(1..=MAX_REQUESTS_PER_MINUTE).contains(&self.limits.requests_per_minute) {
            anyhow::bail!(
                "limits.requests_per_minute: must be between 1 and {MAX_REQUESTS_PER_MINUTE}"
            );
        }
        if self.limits.lease_hold_ms > 1000 {
            anyhow::bail!("limits.lease_hold_ms: must be between 0 and 1000");
        }
        if self.limits.lease_from_requests_per_minute == 0 {
            anyhow::bail!(
                "limits.lease_from_requests_per_minute: must be at least 1 (use limits.lease_hold_ms = 0 to take nothing ahead)"
            );
        }
        if !(1..=36_600).contains(&self.rates.source_fetch_retention_days) {
            anyhow::bail!("rates.source_fetch_retention_days: must be between 1 and 36600");
        }
        if !(1..=36_600).contains(&self.usage.retention_days) {
            anyhow::bail!("usage.retention_days: must be between 1 and 36600");
        }
        if !(100..=4000).contains(&self.usage.flush_interval_ms) {
            anyhow::bail!(
                "usage.flush_interval_ms: must be between 100 and 4000 (counts are visible within 5 s)"
            );
        }
        for (key, value) in [
            (
                "webhooks.max_in_flight_per_endpoint",
                self.webhooks.max_in_flight_per_endpoint,
            ),
            (
                "webhooks.max_in_flight_per_partner",
                self.webhooks.max_in_flight_per_partner,
            ),
            ("webhooks.breaker_failures", self.webhooks.breaker_failures),
        ] {
            if !(1..=1_000_000).contains(&value) {
                anyhow::bail!("{key}: must be between 1 and 1000000");
            }
        }
        if !(1..=MAX_REQUESTS_PER_MINUTE).contains(&self.webhooks.test_pings_per_minute) {
            anyhow::bail!(
                "webhooks.test_pings_per_minute: must be between 1 and {MAX_REQUESTS_PER_MINUTE}"
            );
        }
        if self.auth.max_credentials_per_partner == 0 {
            anyhow::bail!("auth.max_credentials_per_partner: must be at least 1");
        }
        let provider = self.rates.provider;
        if provider.needs_api_key() && self.rates.api_key.is_none() {
            anyhow::bail!(
                "rates.api_key: rates.provider `{provider}` needs an API key; set \
                 CCS__RATES__API_KEY, or choose a provider without one (frankfurter, ecb)"
            );
        }
        for (i, fallback) in self.rates.fallbacks.iter().enumerate() {
            if fallback.kind.needs_api_key() && fallback.kind != provider {
                anyhow::bail!(
                    "rates.fallbacks[{i}]: `{}` needs an API key, and rates.api_key belongs to \
                     the primary provider (`{provider}`); use a fallback without one \
                     (frankfurter, ecb)",
                    fallback.kind
                );
            }
        }
        if self.conversions.idempotency_retention_secs < 86_400 {
            anyhow::bail!(
                "conversions.idempotency_retention_secs: must be at least 86400 (a day past the TTL)"
            );
        }
        if self.tasks.prune_batch_size == 0 {
            anyhow::bail!("tasks.prune_batch_size: must be at least 1");
        }
        for name in self.rates.source_keys.0.keys() {
            if !self.rates.sources.iter().any(|s| &s.name == name) {
                anyhow::bail!(
                    "rates.source_keys: `{name}` is not the name of a rates.sources entry"
                );
            }
        }
        for (i, source) in self.rates.sources.iter().enumerate() {
            if source.kind.needs_api_key() && !self.rates.source_keys.0.contains_key(&source.name) {
                anyhow::bail!(
                    "rates.sources[{i}]: `{}` ({}) needs an API key; add `{}=KEY` to \
                     rates.source_keys (CCS__RATES__SOURCE_KEYS)",
                    source.name,
                    source.kind,
                    source.name
                );
            }
        }
        let consensus = &self.rates.consensus;
        if consensus.min_sources == 0 {
            anyhow::bail!("rates.consensus.min_sources: must be at least 1");
        }
        if self.rates.sources.len() > 1 && consensus.min_sources as usize > self.rates.sources.len()
        {
            anyhow::bail!(
                "rates.consensus.min_sources: {} agreeing values can never come from {} sources",
                consensus.min_sources,
                self.rates.sources.len()
            );
        }
        if consensus.max_deviation_bps == 0 || consensus.max_deviation_bps >= 10_000 {
            anyhow::bail!("rates.consensus.max_deviation_bps: use 1 to 9999");
        }
        if self.tasks.lease_secs == 0 {
            anyhow::bail!("tasks.lease_secs: must be at least 1");
        }
        if self.tasks.max_attempts == 0 {
            anyhow::bail!("tasks.max_attempts: must be at least 1");
        }
        let dearest_lock = spreads.dearest();
        if self.pricing.default_markup_bps + dearest_lock >= 10_000 {
            anyhow::bail!(
                "pricing.default_markup_bps: {} basis points with the dearest lock's {dearest_lock} would leave no rate; use at most {}",
                self.pricing.default_markup_bps,
                9_999 - dearest_lock
            );
        }
        if self.quotes.max_open_notional <= bigdecimal::BigDecimal::default() {
            anyhow::bail!("quotes.max_open_notional: must be positive");
        }
        Ok(())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }
}

/// The highest request limit a partner can have, by default or by an admin's choice: a million
/// a minute is far above what one deployment serves, and keeps the limiter's arithmetic exact.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 1_000_000;

/// Longest duration any `*_secs` setting may hold (a century): `validate` refuses more, so that
/// every one of them fits the `i64` seconds that chrono and SQL intervals use.
const MAX_SETTING_SECS: u64 = 100 * 366 * 86_400;

/// A `*_secs` setting as the `i64` seconds chrono and SQL use. `validate` bounds every such
/// setting by [`MAX_SETTING_SECS`], so the conversion is exact.
pub fn secs(value: u64) -> i64 {
    i64::try_from(value.min(MAX_SETTING_SECS)).unwrap_or(i64::MAX)
}

/// Reads a decimal from its text (a TOML string or an environment variable), never through a
/// float, so that a money limit is exactly what the operator wrote.
fn min_amounts_from_text<'de, D>(
    deserializer: D,
) -> Result<std::collections::HashMap<CurrencyCode, bigdecimal::BigDecimal>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = std::collections::HashMap::<String, String>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(code, text)| {
            let code = CurrencyCode::parse(code.trim()).map_err(serde::de::Error::custom)?;
            let value = crate::money::parse_decimal(text.trim())
                .ok()
                .filter(|v| *v > bigdecimal::BigDecimal::default())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{code}: `{text}` is not a positive decimal number"
                    ))
                })?;
            Ok((code, value))
        })
        .collect()
}

fn decimal_from_text<'de, D>(deserializer: D) -> Result<bigdecimal::BigDecimal, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    text.trim()
        .parse()
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a decimal number")))
}

#[cfg(test)]
mod tests;

//! What each monitor page shows, gathered from the tasks and rates modules. Handlers call these
//! and hand the result to [`super::views`].

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{Monitor, MonitorError};
use crate::currencies::CurrencyCode;
use crate::money::Rate;
use crate::rates::series::{self, Interval};
use crate::rates::service::ProviderFetch;
use crate::tasks::store as runs;
use crate::tasks::{TaskRegistry, TaskRun, TaskState, TaskStats};

/// Runs per page of the runs list.
pub const RUNS_PER_PAGE: i64 = 25;
/// Failures listed on the overview (retention keeps at least this many of each state).
const RECENT_FAILURES: usize = runs::RECENT_FAILURES as usize;
/// Finished runs in the duration chart.
const DURATION_BARS: usize = 40;

/// One registered task on the overview.
pub struct JobLine {
    pub name: String,
    /// Cron expression, when the task is periodic.
    pub cron: Option<String>,
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Its newest run, whatever its state.
    pub last_run: Option<TaskRun>,
}

/// The overview page.
pub struct Overview {
    pub now: DateTime<Utc>,
    pub jobs: Vec<JobLine>,
    pub stats: TaskStats,
    pub providers: Vec<ProviderFetch>,
    /// `rates.max_age_secs`: older rates are stale.
    pub max_age: TimeDelta,
    /// Dead, failed and retrying runs, newest first.
    pub failures: Vec<TaskRun>,
    /// Quotes holding a rate for a partner right now.
    pub quotes_locked: i64,
    /// Webhook deliveries that failed at least once and will be tried again.
    pub webhooks_failing: i64,
    /// Webhook deliveries that used up every attempt.
    pub webhooks_dead: i64,
    /// With `rates.sources`: each source's health, in the configured order.
    pub sources: Vec<crate::rates::health::SourceHealth>,
    /// With `rates.sources`: the sources' values left out of a consensus in the last day.
    pub exclusions: Vec<crate::rates::health::Exclusion>,
}

/// Exclusions listed on the overview.
const RECENT_EXCLUSIONS: i64 = 30;

pub async fn overview(
    monitor: &Monitor,
    registry: &TaskRegistry,
) -> Result<Overview, MonitorError> {
    let now = monitor.clock.now();
    let schedules: BTreeMap<&str, _> = registry
        .schedules()
        .map(|s| (s.task_name.as_str(), s))
        .collect();
    let mut jobs = Vec::new();
    for name in registry.names() {
        let schedule = schedules.get(name);
        let last_run = runs::list(&monitor.db, Some(name), None, None, 1)
            .await?
            .into_iter()
            .next();
        jobs.push(JobLine {
            name: name.to_owned(),
            cron: schedule.map(|s| s.expression.clone()),
            next_fire_at: schedule.and_then(|s| s.next_after(now)),
            last_run,
        });
    }
    let mut failures = Vec::new();
    for s in [TaskState::Dead, TaskState::Failed, TaskState::Retrying] {
        let limit = i64::try_from(RECENT_FAILURES).unwrap_or(10);
        failures.extend(runs::list(&monitor.db, None, Some(s), None, limit).await?);
    }
    // Run ids are UUIDv7: ordering by id is ordering by creation.
    failures.sort_by_key(|r| std::cmp::Reverse(r.id));
    failures.truncate(RECENT_FAILURES);
    let deliveries = crate::webhooks::service::delivery_counts(&monitor.db).await?;
    let names: Vec<String> = monitor
        .rates
        .settings
        .sources
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let (sources, exclusions) = if names.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let base = monitor.rates.settings.base;
        let quotes: Vec<CurrencyCode> = crate::rates::service::known_currencies(&monitor.rates)
            .await?
            .into_keys()
            .filter(|c| *c != base)
            .collect();
        let db = &monitor.db;
        (
            crate::rates::health::sources(db, &names, base, &quotes, now).await?,
            crate::rates::health::recent_exclusions(db, base, &quotes, now, RECENT_EXCLUSIONS)
                .await?,
        )
    };
    Ok(Overview {
        sources,
        exclusions,
        now,
        jobs,
        stats: crate::tasks::stats(&monitor.tasks).await?,
        providers: crate::rates::service::latest_per_provider(&monitor.rates).await?,
        max_age: monitor.rates_max_age,
        failures,
        quotes_locked: crate::quotes::service::active_locks(&monitor.db, &monitor.clock).await?,
        webhooks_failing: deliveries.failing,
        webhooks_dead: deliveries.dead,
    })
}

/// Filters of the runs list, as parsed from the query string.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub task: Option<String>,
    pub state: Option<TaskState>,
    /// The last run of the previous page.
    pub before: Option<Uuid>,
}

/// One page of the runs list.
pub struct RunsPage {
    pub filter: RunFilter,
    pub task_names: Vec<String>,
    pub runs: Vec<TaskRun>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_before: Option<Uuid>,
    pub now: DateTime<Utc>,
}

pub async fn runs_page(
    monitor: &Monitor,
    registry: &TaskRegistry,
    filter: RunFilter,
) -> Result<RunsPage, MonitorError> {
    let mut runs = runs::list(
        &monitor.db,
        filter.task.as_deref(),
        filter.state,
        filter.before,
        RUNS_PER_PAGE + 1,
    )
    .await?;
    let next_before = if runs.len() > usize::try_from(RUNS_PER_PAGE).unwrap_or(usize::MAX) {
        runs.pop();
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(RunsPage {
        filter,
        task_names: registry.names().map(str::to_owned).collect(),
        runs,
        next_before,
        now: monitor.clock.now(),
    })
}

pub async fn run(monitor: &Monitor, id: Uuid) -> Result<TaskRun, MonitorError> {
    runs::get(&monitor.db, id)
        .await?
        .ok_or_else(|| MonitorError::NotFound(format!("no task run {id}")))
}

/// One supported currency on the rates page.
pub struct RateLine {
    pub code: CurrencyCode,
    pub name: String,
    /// Units per one pivot in the latest rates; `None` when not quoted.
    pub rate: Option<Rate>,
    /// When this value was published (it may be older than the snapshot: storage is
    /// change-only).
    pub since: Option<DateTime<Utc>>,
}

/// The latest snapshot in force.
pub struct LatestSnapshot {
    pub provider: String,
    pub as_of: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub stale: bool,
}

/// The chart of one currency against the pivot.
pub struct RateSeries {
    pub currency: CurrencyCode,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Close of each interval in which the rate changed, oldest first.
    pub points: Vec<(DateTime<Utc>, Rate)>,
}

/// The rates page.
pub struct RatesPage {
    pub now: DateTime<Utc>,
    pub pivot: CurrencyCode,
    pub latest: Option<LatestSnapshot>,
    pub lines: Vec<RateLine>,
    pub currency: Option<CurrencyCode>,
    pub days: u32,
    /// The chart, or why there is none.
    pub series: Result<RateSeries, String>,
    /// Recently finished runs, oldest first.
    pub finished_runs: Vec<TaskRun>,
}

/// Longest chart range, in days.
pub const MAX_DAYS: u32 = 365;

pub async fn rates_page(
    monitor: &Monitor,
    currency: Option<CurrencyCode>,
    days: u32,
) -> Result<RatesPage, MonitorError> {
    let rates = &monitor.rates;
    let now = monitor.clock.now();
    let pivot = rates.settings.base;
    let entry = rates.runtime.cache.get(rates).await?;
    let mut usable: Vec<_> = entry.currencies.values().filter(|c| c.usable()).collect();
    usable.sort_by_key(|c| c.code);
    let view = entry.view.as_deref();
    let lines = usable
        .iter()
        .map(|c| RateLine {
            code: c.code,
            name: c.name.clone(),
            rate: view.and_then(|v| v.pivot_rate(c.code)).map(|p| p.rate),
            since: view.and_then(|v| v.quotes.get(&c.code)).map(|q| q.as_of),
        })
        .collect();
    let max_age = monitor.rates_max_age;
    let latest = view.map(|v| LatestSnapshot {
        provider: v.snapshot.provider.clone(),
        as_of: v.snapshot.as_of,
        last_seen_at: v.snapshot.last_seen_at,
        stale: now - v.snapshot.as_of > max_age,
    });
    let currency = currency.or_else(|| {
        let usd = CurrencyCode::parse("USD").ok();
        usable
            .iter()
            .map(|c| c.code)
            .find(|c| Some(*c) == usd)
            .or_else(|| usable.iter().map(|c| c.code).find(|c| *c != pivot))
    });
    let days = days.clamp(1, MAX_DAYS);
    let series = match currency {
        None => Err("No currency to chart.".to_owned()),
        Some(code) if code == pivot => Err(format!("{code} is the pivot: its rate is always 1.")),
        Some(code) => {
            let from = now - TimeDelta::days(i64::from(days));
            let interval = if days <= 2 {
                Interval::Hour
            } else {
                Interval::Day
            };
            match series::series(rates, pivot, &[code], from, now, interval).await {
                Ok(s) => Ok(RateSeries {
                    currency: code,
                    from: s.from,
                    to: s.to,
                    points: s
                        .rates
                        .get(&code)
                        .map(|candles| candles.iter().map(|c| (c.start, c.close.clone())).collect())
                        .unwrap_or_default(),
                }),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    // The run-duration chart may be a moment behind: the replica when current.
    let mut finished_runs: Vec<TaskRun> =
        runs::list(monitor.reads.pool().await, None, None, None, 200)
            .await?
            .into_iter()
            .filter(|r| r.duration_ms.is_some())
            .take(DURATION_BARS)
            .collect();
    finished_runs.reverse();
    Ok(RatesPage {
        now,
        pivot,
        latest,
        lines,
        currency,
        days,
        series,
        finished_runs,
    })
}

//! Jobs as types, and the registry that maps a task name to the code that runs it and, for
//! periodic tasks, to its cron schedule. The registry is built once at start-up; capabilities
//! register their own jobs, so this module never names them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::settings::CronExpression;

/// Which run is executing, as the worker knows it: what every job gets besides its context.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo {
    /// The run being executed; stable across retries, so jobs can use it for idempotency.
    pub run_id: Uuid,
    /// 1 on the first attempt.
    pub attempt: i32,
    /// The cron tick this run is for, when it was scheduled.
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// What a running job may know about itself and use: `state` is what the job was registered
/// with (its [`Job::Context`], or the context given to [`TaskRegistry::register_fn`]).
#[derive(Clone)]
pub struct JobContext<C> {
    /// What the job runs with.
    pub state: C,
    /// The run being executed; stable across retries, so jobs can use it for idempotency.
    pub run_id: Uuid,
    /// 1 on the first attempt.
    pub attempt: i32,
    /// The cron tick this run is for, when it was scheduled.
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl<C> JobContext<C> {
    fn new(state: C, run: RunInfo) -> Self {
        Self {
            state,
            run_id: run.run_id,
            attempt: run.attempt,
            scheduled_for: run.scheduled_for,
        }
    }
}

/// A background job: a name, its arguments as the type itself (serialised to the run's `args`),
/// and an idempotent `run` (a run may be attempted more than once).
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The task name, unique in the registry and stored in `task_runs.task_name`.
    const NAME: &'static str;

    /// What the job needs to run (a pool, a cache, a setting), given at registration, as in
    /// crates.io's worker: the queue machinery never learns what is inside.
    type Context: Clone + Send + Sync + 'static;

    /// Does the work. An `Err` is retried with backoff until `tasks.max_attempts`.
    fn run(
        &self,
        ctx: &JobContext<Self::Context>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Type-erased job code with its context inside: arguments arrive as the JSON stored in the run.
pub type Handler =
    Arc<dyn Fn(RunInfo, serde_json::Value) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// A periodic task: the cron expression (with seconds) and the arguments of each tick's run.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Task name.
    pub task_name: String,
    /// The cron expression as configured.
    pub expression: String,
    /// Arguments of each scheduled run.
    pub args: serde_json::Value,
    cron: croner::Cron,
}

impl Schedule {
    /// Task `task_name` on `expression` (parsed when the settings loaded).
    pub fn new(task_name: &str, expression: &CronExpression) -> Self {
        Self {
            task_name: task_name.to_owned(),
            expression: expression.as_str().to_owned(),
            args: serde_json::json!({}),
            cron: expression.cron().clone(),
        }
    }

    /// Parses a cron expression with seconds, the same dialect tokio-cron-scheduler uses.
    pub fn parse(task_name: &str, expression: &str) -> anyhow::Result<Self> {
        let expression: CronExpression =
            expression.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        Ok(Self::new(task_name, &expression))
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fire times are whole seconds; croner would keep the fraction of its starting point.
        self.cron
            .find_next_occurrence(&after.trunc_subsecs(0), false)
            .ok()
    }

    /// The last fire time at or before `at`.
    pub fn previous_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.trunc_subsecs(0), true)
            .ok()
    }

    /// Fire times in `(after, until]`, at most `limit` of them, oldest first.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        let mut cursor = after;
        while ticks.len() < limit {
            match self.next_after(cursor) {
                Some(t) if t <= until => {
                    ticks.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        ticks
    }
}

/// Task name → job code, plus the schedules of periodic tasks.
#[derive(Default, Clone)]
pub struct TaskRegistry {
    handlers: BTreeMap<String, Handler>,
    schedules: BTreeMap<String, Schedule>,
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a [`Job`] type under [`Job::NAME`], to run with `context`.
    pub fn register<J: Job>(&mut self, context: J::Context) -> &mut Self {
        self.register_fn(J::NAME, context, |ctx, args| async move {
            let job: J = serde_json::from_value(args)
                .with_context(|| format!("arguments of {} do not parse", J::NAME))?;
            job.run(&ctx).await
        })
    }

    /// Registers a job as a plain async function of its context (`context`, handed to every
    /// run) and the JSON arguments. Registering a name twice replaces the earlier handler.
    pub fn register_fn<C, F, Fut>(&mut self, name: &str, context: C, handler: F) -> &mut Self
    where
        C: Clone + Send + Sync + 'static,
        F: Fn(JobContext<C>, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |run, args| {
            Box::pin(handler(JobContext::new(context.clone(), run), args))
        });
        self.handlers.insert(name.to_owned(), handler);
        self
    }

    /// Runs the registered task `name` on the cron `expression` (with seconds). `key` names the
    /// setting the expression came from, for the error message.
    pub fn schedule(&mut self, name: &str, expression: &CronExpression) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.handlers.contains_key(name),
            "task `{name}` is scheduled but not registered"
        );
        self.schedules
            .insert(name.to_owned(), Schedule::new(name, expression));
        Ok(())
    }

    /// The code of task `name`.
    pub fn handler(&self, name: &str) -> Option<Handler> {
        self.handlers.get(name).cloned()
    }

    /// Whether a task of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// Registered task names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// The periodic tasks, by name.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ticks_between_lists_fire_times_after_the_start_up_to_the_end() {
        let s = Schedule::parse("t", "0 */15 * * * *").unwrap();
        let ticks = s.ticks_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:45:00Z"), 10);
        assert_eq!(
            ticks,
            vec![
                at("2026-01-01T10:15:00Z"),
                at("2026-01-01T10:30:00Z"),
                at("2026-01-01T10:45:00Z")
            ]
        );
        assert_eq!(
            s.ticks_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T11:00:00Z"), 2)
                .len(),
            2
        );
    }

    #[test]
    fn previous_fire_time_includes_an_exact_tick() {
        let s = Schedule::parse("t", "0 0 * * * *").unwrap();
        assert_eq!(
            s.previous_at_or_before(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            s.previous_at_or_before(at("2026-01-01T10:59:59Z")),
            Some(at("2026-01-01T10:00:00Z"))
        );
    }

    #[test]
    fn fire_times_are_whole_seconds() {
        let s = Schedule::parse("t", "* * * * * *").unwrap();
        let t = at("2026-01-01T10:00:00.750Z");
        assert_eq!(s.next_after(t), Some(at("2026-01-01T10:00:01Z")));
        assert_eq!(s.previous_at_or_before(t), Some(at("2026-01-01T10:00:00Z")));
    }

    #[test]
    fn a_cron_without_seconds_is_refused() {
        assert!(Schedule::parse("t", "*/5 * * * *").is_err());
    }

    #[test]
    fn scheduling_an_unregistered_task_names_the_task() {
        let err = TaskRegistry::new()
            .schedule("nope", &"* * * * * *".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}

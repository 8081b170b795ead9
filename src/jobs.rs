//! The service's task registry: the queue machinery's own job (`prune`) plus each capability's
//! jobs, each registered with the context it runs with, and their schedules from
//! `tasks.schedule.*`.

use crate::conversions::Conversions;
use crate::conversions::jobs::FinalizeConversions;
use crate::quotes::Quotes;
use crate::quotes::jobs::ExpireQuotes;
use crate::rates::Rates;
use crate::rates::jobs::FetchRates;
use crate::tasks::{Job, TaskRegistry, Tasks};
use crate::webhooks::{DeliverWebhooks, Webhooks};

/// Builds the registry of a process from its capabilities' handles: each job is registered
/// with the one it runs with.
pub fn registry(
    tasks: &Tasks,
    rates: &Rates,
    conversions: &Conversions,
    quotes: &Quotes,
    webhooks: &Webhooks,
) -> anyhow::Result<TaskRegistry> {
    let schedule = &tasks.settings.schedule;
    let mut registry = crate::tasks::registry(tasks)?;
    registry.register::<FetchRates>(rates.clone());
    registry.schedule(FetchRates::NAME, &schedule.fetch_rates)?;
    registry.register::<FinalizeConversions>(conversions.clone());
    registry.schedule(FinalizeConversions::NAME, &schedule.finalize_conversions)?;
    registry.register::<ExpireQuotes>(quotes.clone());
    registry.schedule(ExpireQuotes::NAME, &schedule.expire_quotes)?;
    registry.register::<DeliverWebhooks>(webhooks.clone());
    registry.schedule(DeliverWebhooks::NAME, &schedule.deliver_webhooks)?;
    Ok(registry)
}

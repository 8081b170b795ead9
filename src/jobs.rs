//! The service's task registry: the queue machinery's own job (`prune`) plus each capability's
//! jobs, each registered with the context it runs with, and their schedules from
//! `tasks.schedule.*`.

use crate::conversions::jobs::FinalizeConversions;
use crate::quotes::jobs::ExpireQuotes;
use crate::rates::Rates;
use crate::rates::jobs::FetchRates;
use crate::state::AppState;
use crate::tasks::{Job, TaskRegistry, Tasks};
use crate::webhooks::{DeliverWebhooks, Webhooks};

/// Builds the registry of a process whose queue, rates and webhooks handles are `tasks`,
/// `rates` and `webhooks`.
pub fn registry(
    state: &AppState,
    tasks: &Tasks,
    rates: &Rates,
    webhooks: &Webhooks,
) -> anyhow::Result<TaskRegistry> {
    let schedule = &tasks.settings.schedule;
    let mut registry = crate::tasks::registry(tasks)?;
    registry.register::<FetchRates>(rates.clone());
    registry.schedule(FetchRates::NAME, &schedule.fetch_rates)?;
    registry.register::<FinalizeConversions>(state.clone());
    registry.schedule(FinalizeConversions::NAME, &schedule.finalize_conversions)?;
    registry.register::<ExpireQuotes>(state.clone());
    registry.schedule(ExpireQuotes::NAME, &schedule.expire_quotes)?;
    registry.register::<DeliverWebhooks>(webhooks.clone());
    registry.schedule(DeliverWebhooks::NAME, &schedule.deliver_webhooks)?;
    Ok(registry)
}

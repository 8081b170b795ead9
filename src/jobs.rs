//! The service's task registry: retention (`prune_expired_data`) plus each capability's jobs,
//! each registered with the context it runs with, and their schedules from `tasks.schedule.*`.

use crate::conversions::Conversions;
use crate::conversions::jobs::FinalizeConversions;
use crate::conversions::partitions::MaintainPartitions;
use crate::quotes::Quotes;
use crate::quotes::jobs::ExpireQuotes;
use crate::rates::Rates;
use crate::rates::jobs::FetchRates;
use crate::retention::{PruneExpiredData, Retention};
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
    retention: Retention,
) -> anyhow::Result<TaskRegistry> {
    let schedule = &tasks.settings.schedule;
    let mut registry = TaskRegistry::new();
    registry.register::<PruneExpiredData>(retention);
    registry.schedule(PruneExpiredData::NAME, &schedule.prune_expired_data)?;
    registry.register::<FetchRates>(rates.clone());
    registry.schedule(FetchRates::NAME, &schedule.fetch_rates)?;
    registry.register::<FinalizeConversions>(conversions.clone());
    registry.schedule(FinalizeConversions::NAME, &schedule.finalize_conversions)?;
    registry.register::<MaintainPartitions>(conversions.clone());
    registry.schedule(MaintainPartitions::NAME, &schedule.maintain_partitions)?;
    registry.register::<ExpireQuotes>(quotes.clone());
    registry.schedule(ExpireQuotes::NAME, &schedule.expire_quotes)?;
    registry.register::<DeliverWebhooks>(webhooks.clone());
    registry.schedule(DeliverWebhooks::NAME, &schedule.deliver_webhooks)?;
    Ok(registry)
}

//! The service's task registry: the queue machinery's own job (`prune`) plus each capability's
//! jobs, with their schedules from `tasks.schedule.*`.

use crate::conversions::jobs::FinalizeConversions;
use crate::rates::jobs::FetchRates;
use crate::settings::Settings;
use crate::tasks::{Job, TaskRegistry};

pub fn registry(settings: &Settings) -> anyhow::Result<TaskRegistry> {
    let mut registry = crate::tasks::registry(settings)?;
    registry.register::<FetchRates>();
    registry.schedule(
        FetchRates::NAME,
        &settings.tasks.schedule.fetch_rates,
        "tasks.schedule.fetch_rates",
    )?;
    registry.register::<FinalizeConversions>();
    registry.schedule(
        FinalizeConversions::NAME,
        &settings.tasks.schedule.finalize_conversions,
        "tasks.schedule.finalize_conversions",
    )?;
    Ok(registry)
}

//! The service's task registry: the queue machinery's own job (`prune`) plus each capability's
//! jobs, each registered with the context it runs with, and their schedules from
//! `tasks.schedule.*`.

use crate::conversions::Conversions;
use crate::conversions::jobs::FinalizeConversions;
use crate::quotes::Quotes;
use crate::quotes::jobs::ExpireQuotes;
use crate::rates::Rates;
use crate::rates::jobs::FetchRates;
use crate::state::AppState;
use crate::tasks::{Job, TaskRegistry};
use crate::webhooks::{DeliverWebhooks, Dispatcher};

/// Builds the registry for a process whose rates handle is `rates`.
pub fn registry(state: &AppState, rates: &Rates) -> anyhow::Result<TaskRegistry> {
    let settings = &state.settings;
    let mut registry = crate::tasks::registry(state)?;
    registry.register::<FetchRates>(rates.clone());
    registry.schedule(FetchRates::NAME, &settings.tasks.schedule.fetch_rates)?;
    let conversions = Conversions::new(rates, settings.conversions.clone());
    let quotes = Quotes::new(&conversions, settings.quotes.clone());
    registry.register::<FinalizeConversions>(conversions);
    registry.schedule(
        FinalizeConversions::NAME,
        &settings.tasks.schedule.finalize_conversions,
    )?;
    registry.register::<ExpireQuotes>(quotes);
    registry.schedule(ExpireQuotes::NAME, &settings.tasks.schedule.expire_quotes)?;
    registry.register::<DeliverWebhooks>(Dispatcher::new(state)?);
    registry.schedule(
        DeliverWebhooks::NAME,
        &settings.tasks.schedule.deliver_webhooks,
    )?;
    Ok(registry)
}

//! The monthly partitions of `conversions` (by `created_at`, in UTC months): created ahead,
//! this month and the next [`MONTHS_AHEAD`], by the `maintain_partitions` job and at start-up,
//! and, when `conversions.detach_partitions_after_months` is set, old ones detached (never
//! dropped). The DDL lives in the schema (`conversions_ensure_month_partition`,
//! `conversions_detach_partitions_before`, migration `20261207300000`), serialised there by an
//! advisory lock, so instances starting together and a job running beside them agree.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::Conversions;
use crate::tasks::{Job, JobContext};

/// Months created ahead of the current one.
pub const MONTHS_AHEAD: u32 = 2;

/// The first day of the UTC month of `at`: the month whose partition holds a row created at
/// `at` (history pages are split by it too, `store::history::list`).
pub(crate) fn month_of(at: DateTime<Utc>) -> NaiveDate {
    // Day 1 of a month that exists: always valid.
    NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or(at.date_naive())
}

/// Creates the partitions of the month of `now` and the [`MONTHS_AHEAD`] after it that do not
/// exist yet (moving any rows of those months out of the default partition); returns the
/// names of those created.
pub async fn ensure_ahead(db: &PgPool, now: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
    let first = month_of(now);
    let mut created = Vec::new();
    for ahead in 0..=MONTHS_AHEAD {
        let Some(month) = first.checked_add_months(Months::new(ahead)) else {
            continue;
        };
        let name = sqlx::query_scalar!(
            r#"SELECT conversions_ensure_month_partition($1) AS "name""#,
            month
        )
        .fetch_one(db)
        .await?;
        created.extend(name);
    }
    Ok(created)
}

/// The first instant of the month `months` whole months before the month of `now`: partitions
/// ending at or before it are old enough to detach.
pub fn detach_cutoff(now: DateTime<Utc>, months: u32) -> Option<DateTime<Utc>> {
    let month = month_of(now).checked_sub_months(Months::new(months))?;
    Some(Utc.from_utc_datetime(&month.and_hms_opt(0, 0, 0)?))
}

/// Detaches the monthly partitions that ended at or before `cutoff`; returns their names.
pub async fn detach_before(db: &PgPool, cutoff: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
    let names = sqlx::query_scalar!(
        r#"SELECT conversions_detach_partitions_before($1) AS "name!""#,
        cutoff
    )
    .fetch_all(db)
    .await?;
    Ok(names)
}

/// Creates the partitions of `conversions` ahead and, if
/// `conversions.detach_partitions_after_months` is set, detaches the old ones. Idempotent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MaintainPartitions {}

impl Job for MaintainPartitions {
    const NAME: &'static str = "maintain_partitions";
    type Context = Conversions;

    #[tracing::instrument(name = "maintain_partitions", skip_all, fields(run_id = %ctx.run_id))]
    async fn run(&self, ctx: &JobContext<Conversions>) -> anyhow::Result<()> {
        use anyhow::Context;
        let conversions = &ctx.state;
        let now = conversions.clock.now();
        let created = ensure_ahead(&conversions.db, now)
            .await
            .context("creating the partitions of conversions ahead")?;
        if !created.is_empty() {
            tracing::info!(?created, "conversions partitions created");
        }
        let months = conversions.settings.detach_partitions_after_months;
        if months > 0
            && let Some(cutoff) = detach_cutoff(now, months)
        {
            let detached = detach_before(&conversions.db, cutoff)
                .await
                .context("detaching old partitions of conversions")?;
            if !detached.is_empty() {
                tracing::info!(?detached, %cutoff, "conversions partitions detached for archiving");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn months_are_utc_months() {
        assert_eq!(
            month_of(at("2026-12-31T23:59:59Z")),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
        assert_eq!(
            month_of(at("2027-01-01T00:00:00Z")),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
    }

    #[test]
    fn the_detach_cutoff_keeps_the_last_whole_months() {
        // Three months kept besides the current one: December's partition ends on 1 January,
        // which is not after the cutoff of 1 January.
        assert_eq!(
            detach_cutoff(at("2027-04-15T12:00:00Z"), 3),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            detach_cutoff(at("2027-04-01T00:00:00Z"), 1),
            Some(at("2027-03-01T00:00:00Z"))
        );
    }
}

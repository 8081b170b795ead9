//! What a lock is: its duration and the spread it costs.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::settings::SpreadSettings;

/// How long a quote's rate is held for the partner. Stored as its `snake_case` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Lock {
    /// Indicative: shows the price now, holds nothing (it cannot be converted on).
    None,
    /// Held for five minutes.
    FiveMinutes,
    /// Held for an hour.
    Hour,
    /// Held for a day.
    Day,
}

impl Lock {
    /// Every lock, for messages.
    pub const ALL: [Lock; 4] = [Lock::None, Lock::FiveMinutes, Lock::Hour, Lock::Day];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lock::None => "none",
            Lock::FiveMinutes => "five_minutes",
            Lock::Hour => "hour",
            Lock::Day => "day",
        }
    }

    /// How long the rate is held.
    pub fn duration(self) -> Duration {
        match self {
            Lock::None => Duration::zero(),
            Lock::FiveMinutes => Duration::minutes(5),
            Lock::Hour => Duration::hours(1),
            Lock::Day => Duration::days(1),
        }
    }

    /// When a quote created at `created_at` stops being convertible.
    pub fn expires_at(self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at + self.duration()
    }

    /// What this lock costs, in basis points below the reference rate.
    pub fn spread_bps(self, spreads: &SpreadSettings) -> u32 {
        match self {
            Lock::None => spreads.none,
            Lock::FiveMinutes => spreads.five_minutes,
            Lock::Hour => spreads.hour,
            Lock::Day => spreads.day,
        }
    }
}

/// Where a quote stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    /// Convertible on.
    Active,
    /// Past `expires_at` (an indicative quote is expired from the start).
    Expired,
    /// A fixed-amount quote already converted on.
    Used,
}

impl QuoteStatus {
    /// A quote is convertible strictly before `expires_at`; a used one stays used.
    pub fn at(
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        used_at: Option<DateTime<Utc>>,
    ) -> Self {
        if used_at.is_some() {
            QuoteStatus::Used
        } else if now >= expires_at {
            QuoteStatus::Expired
        } else {
            QuoteStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_round_trip_and_unknown_ones_are_refused() {
        for lock in Lock::ALL {
            assert_eq!(Lock::parse(lock.as_str()), Some(lock));
        }
        assert_eq!(Lock::parse("week"), None);
        assert_eq!(Lock::parse("Hour"), None);
    }

    #[test]
    fn a_quote_expires_exactly_at_its_lock_end() {
        let t = Utc::now();
        let expires = Lock::FiveMinutes.expires_at(t);
        assert_eq!(expires - t, Duration::seconds(300));
        let just_before = expires - Duration::milliseconds(1);
        assert_eq!(
            QuoteStatus::at(just_before, expires, None),
            QuoteStatus::Active
        );
        assert_eq!(
            QuoteStatus::at(expires, expires, None),
            QuoteStatus::Expired
        );
        assert_eq!(
            QuoteStatus::at(t, Lock::None.expires_at(t), None),
            QuoteStatus::Expired
        );
        assert_eq!(QuoteStatus::at(t, expires, Some(t)), QuoteStatus::Used);
    }

    #[test]
    fn each_lock_costs_its_configured_spread() {
        let s = SpreadSettings {
            none: 0,
            five_minutes: 5,
            hour: 20,
            day: 50,
        };
        let got: Vec<u32> = Lock::ALL.iter().map(|l| l.spread_bps(&s)).collect();
        assert_eq!(got, [0, 5, 20, 50]);
    }
}

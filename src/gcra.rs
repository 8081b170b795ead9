//! A rate limiter: GCRA (the generic cell rate algorithm) per subject (a partner's requests in
//! `access`, an endpoint's test pings in `webhooks`), one atomic Lua script in Redis so every
//! instance draws on one budget, and the same algorithm in process while Redis does not answer.
//! Shared core: it knows nothing of what it limits, only a key and a limit per minute.
//!
//! GCRA keeps one number per subject, the theoretical arrival time (TAT): when the subject's
//! budget would be whole again if it sent nothing more. Each request moves it on by one
//! emission interval (a minute divided by the limit); a request is allowed while the TAT stays
//! within a minute of now. So a partner may spend a full minute's worth in one burst, and then
//! gets one more per interval — no window edges where twice the limit gets through.
//! Times are the injected clock's, in microseconds, passed to the script, so tests move time
//! instead of sleeping and every instance agrees as far as their clocks do.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use uuid::Uuid;

/// KEYS: the subject's TAT. ARGV: now (µs), emission interval (µs), limit, requests wanted,
/// budget held back (µs). Takes as many of the wanted requests as fit (at least one, or none)
/// in the budget less what is held back.
/// Returns {requests granted, µs until one would be (when none was), µs of budget in use after}.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local now = tonumber(ARGV[1])
        local interval = tonumber(ARGV[2])
        local capacity = interval * tonumber(ARGV[3]) - tonumber(ARGV[5])
        local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
        if tat < now then tat = now end
        local granted = math.min(tonumber(ARGV[4]), math.floor((capacity - (tat - now)) / interval))
        if granted < 1 then
            return {0, tat + interval - capacity - now, tat - now}
        end
        local new_tat = tat + granted * interval
        redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
        return {granted, 0, new_tat - now}
        ",
    )
});

const MINUTE_MICROS: i64 = 60_000_000;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// The subject's limit, per minute.
    pub limit: u32,
    /// Requests the subject could still make at once after this one.
    pub remaining: u32,
    /// Seconds until the whole budget is available again.
    pub reset_secs: u64,
    /// For a refused request: seconds until one would be allowed (at least 1).
    pub retry_after_secs: u64,
}

impl Decision {
    fn from_micros(limit: u32, allowed: bool, wait: i64, in_use: i64) -> Self {
        let interval = emission_interval(limit);
        let capacity = interval * i64::from(limit);
        let remaining = if allowed {
            (capacity - in_use).max(0) / interval
        } else {
            0
        };
        Self {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_secs: ceil_secs(in_use),
            retry_after_secs: if allowed { 0 } else { ceil_secs(wait).max(1) },
        }
    }
}

impl Decision {
    /// A request refused because none of the budget is left: `wait` µs until one would be,
    /// `in_use` µs of it taken.
    pub fn refused(limit: u32, wait: i64, in_use: i64) -> Self {
        Self::from_micros(limit, false, wait, in_use)
    }

    /// A request allowed out of requests taken ahead from the shared budget: `in_use` µs of
    /// the budget are taken as of now (the requests taken ahead included), `held_back` µs of it
    /// are never handed out, and `left` requests taken ahead are still unspent.
    pub fn from_taken(limit: u32, in_use: i64, held_back: i64, left: u32) -> Self {
        let interval = emission_interval(limit);
        let capacity = interval * i64::from(limit) - held_back;
        let remaining = (capacity - in_use).max(0) / interval + i64::from(left);
        Self {
            allowed: true,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0).min(limit),
            reset_secs: ceil_secs(in_use),
            retry_after_secs: 0,
        }
    }
}

fn ceil_secs(micros: i64) -> u64 {
    u64::try_from((micros.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

/// Microseconds between requests at `limit` per minute (`limit` is at most a million, so at
/// least 60).
pub fn emission_interval(limit: u32) -> i64 {
    MINUTE_MICROS / i64::from(limit.max(1))
}

/// Runs the script for one request of `key`: `Err` when Redis does not answer.
pub async fn check_redis(
    redis: &crate::redis_client::Redis,
    key: &str,
    limit: u32,
    now_micros: i64,
) -> anyhow::Result<Decision> {
    let grant = take_redis(redis, key, limit, now_micros, 1, 0).await?;
    Ok(Decision::from_micros(
        limit,
        grant.granted > 0,
        grant.wait,
        grant.in_use,
    ))
}

/// What Redis granted of a [`take_redis`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Requests granted (0 when none fits).
    pub granted: u32,
    /// When none was granted: µs until one would be.
    pub wait: i64,
    /// µs of budget in use after the grant (the granted requests included).
    pub in_use: i64,
}

/// Takes up to `wanted` requests of `key`'s budget in one round trip, leaving `held_back` µs of
/// the budget untaken (see `access`'s leases, which need that margin to stay within the limit):
/// `Err` when Redis does not answer.
pub async fn take_redis(
    redis: &crate::redis_client::Redis,
    key: &str,
    limit: u32,
    now_micros: i64,
    wanted: u32,
    held_back: i64,
) -> anyhow::Result<Grant> {
    let mut call = GCRA.prepare_invoke();
    call.key(key)
        .arg(now_micros)
        .arg(emission_interval(limit))
        .arg(limit)
        .arg(wanted.max(1))
        .arg(held_back.max(0));
    let (granted, wait, in_use): (i64, i64, i64) = redis.invoke(&call).await?;
    Ok(Grant {
        granted: u32::try_from(granted).unwrap_or(0),
        wait,
        in_use,
    })
}

/// The same algorithm in this process, for while Redis does not answer: each instance then
/// allows up to the limit on its own, so N instances allow at most N times it.
#[derive(Debug, Default)]
pub struct LocalLimiter {
    /// subject → TAT in µs.
    tats: Mutex<HashMap<Uuid, i64>>,
}

/// Subjects kept before those with a TAT in the past (a whole budget) are swept.
const SWEEP_AT: usize = 10_000;

impl LocalLimiter {
    pub fn check(&self, subject: Uuid, limit: u32, now: i64) -> Decision {
        let interval = emission_interval(limit);
        let capacity = interval * i64::from(limit);
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() >= SWEEP_AT {
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(&subject).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat - now > capacity {
            return Decision::from_micros(limit, false, new_tat - capacity - now, tat - now);
        }
        tats.insert(subject, new_tat);
        Decision::from_micros(limit, true, 0, new_tat - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minutes_worth_passes_at_once_then_one_per_interval() {
        let limiter = LocalLimiter::default();
        let partner = Uuid::new_v4();
        let t0 = 1_000_000_000_000;
        let decisions: Vec<_> = (0..25).map(|_| limiter.check(partner, 20, t0)).collect();
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 20);
        assert_eq!(decisions[0].remaining, 19);
        assert_eq!(decisions[19].remaining, 0);
        assert_eq!(decisions[19].reset_secs, 60);
        let refused = decisions[20];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 3);
        // One interval (3 s) later, exactly one more.
        let later = t0 + 3_000_000;
        assert!(limiter.check(partner, 20, later).allowed);
        assert!(!limiter.check(partner, 20, later).allowed);
        // Another partner has its own budget.
        assert!(limiter.check(Uuid::new_v4(), 20, later).allowed);
        // A minute of silence gives the whole budget back.
        let idle = later + 60_000_000;
        let d = limiter.check(partner, 20, idle);
        assert!(d.allowed);
        assert_eq!(d.remaining, 19);
        assert_eq!(d.reset_secs, 3);
    }

    #[test]
    fn limits_that_do_not_divide_a_minute_still_allow_exactly_the_limit_in_a_burst() {
        for limit in [1, 7, 13, 600, 1_000_000] {
            let limiter = LocalLimiter::default();
            let partner = Uuid::new_v4();
            let allowed = (0..limit + 5)
                .filter(|_| limiter.check(partner, limit, 5_000_000).allowed)
                .count();
            assert_eq!(allowed, limit as usize, "limit {limit}");
        }
    }
}

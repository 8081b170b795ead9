//! Leases of a partner's request budget, for partners with a high limit: instead of one Redis
//! round trip per request, an instance takes several requests of the budget in one call
//! ([`crate::gcra::take_redis`]) and admits them from memory, for at most the hold
//! (`limits.lease_hold_ms`); what is unspent then is forfeited, never given back.
//!
//! Why the limit still holds across instances: every request admitted was granted by Redis
//! first, at most one hold before it is admitted. So the requests admitted in any span of time
//! were granted in that span or in the hold before it, and the budget each take may use is
//! smaller by exactly what one hold refills (`held_back`): the hold's extra time is paid for by
//! that margin, and no span ever sees more than the limit allows. What it costs: a leasing
//! partner's burst is smaller by that margin (a 600th of the limit at 100 ms), and requests
//! taken but not spent within the hold are lost (the next lease is then smaller; see
//! [`Lease::wanted`]), so a partner may be admitted slightly fewer than its limit, never more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::gcra::{Decision, Grant};

/// Most requests one lease asks for.
pub const MAX_LEASE: u32 = 256;

/// Partners kept before those without a live lease are swept.
const SWEEP_AT: usize = 10_000;

/// How long, after Redis failed to answer a take, this instance counts the partner's requests
/// on its own without asking Redis again (each request would otherwise wait for Redis's timeout
/// in turn, behind the lease's lock).
pub const AFTER_FAILURE: Duration = Duration::from_millis(250);

/// One partner's lease on this instance.
#[derive(Debug, Default)]
pub struct Lease {
    /// The limit it was taken under (a changed limit voids it).
    limit: u32,
    /// Requests taken and not yet admitted.
    left: u32,
    /// When it was taken (the clock's µs).
    taken_at: i64,
    /// µs of the budget in use right after it was taken.
    in_use: i64,
    /// How many the last take asked for.
    size: u32,
    /// Refused by Redis: no request is granted before this (the clock's µs), whoever asks.
    refused_until: Option<i64>,
    /// Redis did not answer a take at this instant.
    failed_at: Option<Instant>,
}

impl Lease {
    fn live(&self, limit: u32, now: i64, hold: i64) -> bool {
        self.limit == limit && now >= self.taken_at && now - self.taken_at < hold
    }

    /// Admits one request from the lease, or refuses it while Redis said none fits: `None`
    /// when Redis must be asked.
    pub fn spend(&mut self, limit: u32, now: i64, hold: i64) -> Option<Decision> {
        let in_use = self.in_use - (now - self.taken_at);
        if self.left > 0 && self.live(limit, now, hold) {
            self.left -= 1;
            return Some(Decision::from_taken(limit, in_use, hold, self.left));
        }
        match self.refused_until {
            // The shared budget only ever fills up: nothing is granted before then.
            Some(until) if self.limit == limit && now >= self.taken_at && now < until => {
                Some(Decision::refused(limit, until - now, in_use))
            }
            _ => None,
        }
    }

    /// Whether Redis failed to answer a take less than [`AFTER_FAILURE`] ago.
    pub fn failing(&self) -> bool {
        self.failed_at
            .is_some_and(|at| at.elapsed() < AFTER_FAILURE)
    }

    /// How many requests the next take asks for: twice the last when it was spent within its
    /// hold (the partner is busy on this instance), half when some of it was forfeited.
    pub fn wanted(&self, limit: u32, now: i64, hold: i64) -> u32 {
        let size = if self.limit != limit || self.size == 0 {
            1
        } else if self.left == 0 && self.live(limit, now, hold) {
            self.size.saturating_mul(2)
        } else if self.left > 0 {
            self.size / 2
        } else {
            self.size
        };
        size.clamp(1, MAX_LEASE)
    }

    /// Records what Redis answered a take of `wanted` requests at `now`, the first of them
    /// (if any) admitted by the caller: its decision.
    pub fn taken(
        &mut self,
        limit: u32,
        now: i64,
        hold: i64,
        wanted: u32,
        grant: Grant,
    ) -> Decision {
        self.limit = limit;
        self.taken_at = now;
        self.in_use = grant.in_use;
        self.size = wanted;
        self.failed_at = None;
        if grant.granted == 0 {
            self.left = 0;
            self.refused_until = Some(now + grant.wait.max(1));
            return Decision::refused(limit, grant.wait, grant.in_use);
        }
        self.left = grant.granted - 1;
        self.refused_until = None;
        Decision::from_taken(limit, grant.in_use, hold, self.left)
    }

    /// Redis did not answer a take: nothing is held.
    pub fn failed(&mut self) {
        self.left = 0;
        self.refused_until = None;
        self.failed_at = Some(Instant::now());
    }
}

/// One partner's lease on this instance, and the turn to renew it.
#[derive(Debug, Default)]
pub struct Slot {
    /// The lease, spent under a plain lock held for a few instructions: admitting a request
    /// from a live lease never waits on another request, nor wakes another worker thread (a
    /// `tokio::sync::Mutex` here did both, once per request, under load).
    lease: Mutex<Lease>,
    /// Held across a take from Redis, so that requests arriving meanwhile wait for that lease
    /// rather than each taking one of their own.
    taking: tokio::sync::Mutex<()>,
}

impl Slot {
    /// The lease, locked (a panic elsewhere leaves it usable: every update is whole).
    pub fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn to take a lease from Redis: one request of this instance at a time.
    pub async fn take_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.taking.lock().await
    }
}

/// This instance's leases, by partner.
#[derive(Debug, Default)]
pub struct Leases {
    by_partner: Mutex<HashMap<Uuid, Arc<Slot>>>,
}

impl Leases {
    /// The partner's lease slot.
    pub fn of(&self, partner: Uuid) -> Arc<Slot> {
        let mut map = self.by_partner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT && !map.contains_key(&partner) {
            // Whatever nobody is using now: at worst a partner's next request takes a new one.
            map.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        map.entry(partner).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: i64 = 100_000;

    fn grant(granted: u32, in_use: i64) -> Grant {
        Grant {
            granted,
            wait: 0,
            in_use,
        }
    }

    #[test]
    fn a_lease_is_spent_within_its_hold_and_void_after_it() {
        let mut lease = Lease::default();
        assert_eq!(lease.spend(6000, 0, HOLD), None);
        assert_eq!(lease.wanted(6000, 0, HOLD), 1);
        let first = lease.taken(6000, 0, HOLD, 4, grant(4, 40_000));
        assert!(first.allowed);
        for _ in 0..3 {
            assert!(lease.spend(6000, 50_000, HOLD).is_some_and(|d| d.allowed));
        }
        // Spent within its hold: the next asks for twice as many.
        assert_eq!(lease.spend(6000, 50_000, HOLD), None);
        assert_eq!(lease.wanted(6000, 50_000, HOLD), 8);
        lease.taken(6000, 60_000, HOLD, 8, grant(8, 80_000));
        // A hold later what is left is void, and the next take asks for fewer.
        assert_eq!(lease.spend(6000, 60_000 + HOLD, HOLD), None);
        assert_eq!(lease.wanted(6000, 60_000 + HOLD, HOLD), 4);
        // So is a lease taken under another limit.
        assert_eq!(lease.spend(7000, 60_001, HOLD), None);
    }

    #[test]
    fn a_refusal_stands_until_a_request_would_fit() {
        let mut lease = Lease::default();
        let refused = lease.taken(
            6000,
            0,
            HOLD,
            1,
            Grant {
                granted: 0,
                wait: 30_000,
                in_use: 59_990_000,
            },
        );
        assert!(!refused.allowed);
        assert!(lease.spend(6000, 29_999, HOLD).is_some_and(|d| !d.allowed));
        assert_eq!(lease.spend(6000, 30_000, HOLD), None);
    }
}

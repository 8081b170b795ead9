//! Partner access limits: how many requests a partner may make per minute, counted across every
//! instance in Redis ([`crate::gcra`]; for high limits in leases of several requests per round
//! trip, [`lease`]), with each instance counting on its own while Redis does not answer (never
//! unlimited); the IETF `RateLimit-Policy`/`RateLimit` headers on every partner
//! response and 429 beyond the limit ([`middleware`]); admins' per-partner limits
//! (`partner_limits`, [`routes`]); each partner's usage per day ([`usage`]). Owns the
//! `partner_limits` and `partner_usage_daily` tables. Knows a partner only as the
//! subject of a verified access token (through `auth`'s token keys); what a partner may do is
//! still `auth`'s extractors' business.

pub mod lease;
pub mod middleware;
pub mod routes;
pub mod store;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::gcra::{self, Decision, LocalLimiter};
use crate::redis_client::{OutageLog, Redis};
use crate::settings::{LimitSettings, UsageSettings};

/// How long an instance trusts the limit it read for a partner. An admin's change is applied at
/// once on the instance that made it and within this long on the others.
pub const LIMIT_MEMO_TTL: Duration = Duration::from_secs(5);

/// partner → (its own limit, if any; when it was read).
type LimitMemo = RwLock<HashMap<Uuid, (Option<u32>, Instant)>>;

/// What the limits run with: the pool (overrides), Redis (the shared counters), the clock, the
/// default from `limits.*`, and this process's memo of partners' limits and fallback counters.
#[derive(Clone)]
pub struct Access {
    pub db: PgPool,
    pub redis: Redis,
    pub clock: Clock,
    pub settings: Arc<LimitSettings>,
    memo: Arc<LimitMemo>,
    fallback: Arc<LocalLimiter>,
    outage: Arc<OutageLog>,
    /// This instance's leases of high limits' budgets (see [`lease`]).
    leases: Arc<lease::Leases>,
    /// `usage.*`.
    pub usage_settings: Arc<UsageSettings>,
    /// Usage counted on this instance, not yet written.
    pub usage: Arc<usage::UsageBuffer>,
    /// Whether writing usage is failing now, so it is logged once per outage.
    usage_outage: Arc<OutageLog>,
}

impl Access {
    pub fn new(
        db: PgPool,
        redis: Redis,
        clock: Clock,
        settings: &LimitSettings,
        usage_settings: &UsageSettings,
    ) -> Self {
        Self {
            db,
            redis,
            clock,
            settings: Arc::new(settings.clone()),
            memo: Arc::default(),
            fallback: Arc::default(),
            outage: Arc::default(),
            leases: Arc::default(),
            usage_settings: Arc::new(usage_settings.clone()),
            usage: Arc::default(),
            usage_outage: Arc::default(),
        }
    }

    /// The partner's own limit, if an admin set one: from the memo while it is fresh, else from
    /// PostgreSQL. If PostgreSQL does not answer, the last value read (or the default) holds:
    /// the request is not refused for it, and the request itself will find out soon enough.
    async fn own_limit(&self, partner: Uuid) -> Option<u32> {
        let remembered = {
            let memo = self.memo.read().unwrap_or_else(|p| p.into_inner());
            memo.get(&partner).copied()
        };
        if let Some((limit, at)) = remembered
            && at.elapsed() < LIMIT_MEMO_TTL
        {
            return limit;
        }
        match store::own_limit(&self.db, partner).await {
            Ok(limit) => {
                self.remember(partner, limit);
                limit
            }
            Err(e) => {
                tracing::debug!(error = %e, "partner limit not readable; using the last known");
                remembered.and_then(|(limit, _)| limit)
            }
        }
    }

    fn remember(&self, partner: Uuid, limit: Option<u32>) {
        let mut memo = self.memo.write().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= 10_000 {
            memo.retain(|_, (_, at)| at.elapsed() < LIMIT_MEMO_TTL);
        }
        memo.insert(partner, (limit, Instant::now()));
    }

    /// The limit that applies to `partner`, requests per minute.
    pub async fn limit_of(&self, partner: Uuid) -> u32 {
        self.own_limit(partner)
            .await
            .unwrap_or(self.settings.requests_per_minute)
    }

    /// Counts one request of `partner` against its limit, or refuses it: one Redis round trip
    /// per request, or, for a limit of at least `limits.lease_from_requests_per_minute`, one per
    /// lease (see [`lease`]).
    pub async fn check(&self, partner: Uuid) -> Decision {
        let limit = self.limit_of(partner).await;
        let now = self.clock.now().timestamp_micros();
        let key = || self.redis.key(&format!("limits:gcra:{partner}"));
        let hold = i64::try_from(self.settings.lease_hold_ms).unwrap_or(0) * 1000;
        if hold == 0 || limit < self.settings.lease_from_requests_per_minute {
            let checked = gcra::check_redis(&self.redis, &key(), limit, now).await;
            return self.or_fallback(checked, partner, limit, now);
        }
        let slot = self.leases.of(partner);
        // From the lease while it lasts: no await, no other request waited for.
        {
            let mut lease = slot.lease();
            if let Some(decision) = lease.spend(limit, now, hold) {
                return decision;
            }
            if lease.failing() {
                return self.fallback.check(partner, limit, now);
            }
        }
        let _turn = slot.take_turn().await;
        // Whoever had the turn before may have taken a lease this request can spend.
        let wanted = {
            let mut lease = slot.lease();
            if let Some(decision) = lease.spend(limit, now, hold) {
                return decision;
            }
            if lease.failing() {
                return self.fallback.check(partner, limit, now);
            }
            lease.wanted(limit, now, hold)
        };
        match gcra::take_redis(&self.redis, &key(), limit, now, wanted, hold).await {
            Ok(grant) => {
                let decision = slot.lease().taken(limit, now, hold, wanted, grant);
                self.or_fallback(Ok(decision), partner, limit, now)
            }
            Err(e) => {
                slot.lease().failed();
                self.or_fallback(Err(e), partner, limit, now)
            }
        }
    }

    /// What Redis decided, or, when it did not answer, what this instance's own count says.
    fn or_fallback(
        &self,
        checked: anyhow::Result<Decision>,
        partner: Uuid,
        limit: u32,
        now: i64,
    ) -> Decision {
        match checked {
            Ok(decision) => {
                if self.outage.succeeded() {
                    tracing::info!("request limits: Redis answers again; counting there");
                }
                decision
            }
            Err(e) => {
                if self.outage.failed() {
                    tracing::warn!(error = %e,
                        "request limits: Redis unavailable; each instance counts on its own until it answers");
                }
                self.fallback.check(partner, limit, now)
            }
        }
    }
}

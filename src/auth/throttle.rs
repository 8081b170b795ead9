//! Login throttling in Redis, per account (or client credential) and per client IP, shared by
//! every instance.
//!
//! Every login attempt first *reserves* a slot: one Lua script checks both counters and, when
//! neither is at its limit, increments both, all in one atomic step before the password is
//! verified. A burst of concurrent attempts therefore gets exactly as many guesses as the same
//! attempts one after another (`auth.max_failed_logins` per account, four times that per IP,
//! which may be a NAT shared by many people, within `auth.login_window_secs`); the rest get 429
//! with `Retry-After` until the window ends. A successful login gives its slot back: the account
//! counter is cleared and the IP counter decremented, so only failures accumulate.
//!
//! Failed client authentication at the token endpoint (`grant_type=client_credentials`) is
//! throttled the same way, per client id and per IP (the IP counter is shared with logins).
//!
//! If Redis is unreachable the throttle falls back to counters in this process
//! ([`LocalCounters`]) with the same limits and window: N instances then allow at most N times
//! the guesses, never unlimited ones, since an outage an attacker can cause must not switch the
//! brute-force protection off. The fallback is logged once when the outage begins and once when
//! it ends. Account keys hold a hash of the email (or client id), never the value itself.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use sha2::{Digest, Sha256};

use super::Auth;
use super::domain::{Email, LoginEmail};
use crate::clock::Clock;
use crate::redis_client::{OutageLog, Redis};

/// KEYS: account counter, IP counter. ARGV: account limit, IP limit, window in seconds.
/// Returns `{0, 0}` when the attempt was counted, or `{seconds to wait, 1 if the account's own
/// limit is among those reached}`.
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local wait = 0
        local account = 0
        for i, key in ipairs(KEYS) do
            if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
                wait = math.max(wait, redis.call('TTL', key), 1)
                if i == 1 then account = 1 end
            end
        end
        if wait > 0 then return {wait, account} end
        for _, key in ipairs(KEYS) do
            redis.call('INCR', key)
            redis.call('EXPIRE', key, ARGV[3], 'NX')
        end
        return {0, 0}
        ",
    )
});

/// KEYS: account counter, IP counter. Clears the account, gives one IP slot back; never creates
/// a key (an expired counter stays gone rather than reappearing without a TTL).
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        redis.call('DEL', KEYS[1])
        if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
            redis.call('DECR', KEYS[2])
        end
        return 0
        ",
    )
});

/// What the throttle says about one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted against both limits; verify the password.
    Reserved,
    /// A limit is reached: wait this many seconds. `account` when the account's (or client
    /// id's) own limit is (the lock a new password or `user unlock` lifts), not only the client
    /// address's.
    Blocked {
        retry_after_secs: u64,
        account: bool,
    },
}

/// The throttle's counters in this process, used while Redis does not answer: the same fixed
/// windows as the script, keyed by the same names.
#[derive(Debug, Default)]
pub struct LocalCounters {
    /// key → (attempts, end of the window in unix seconds).
    counters: Mutex<HashMap<String, (u32, i64)>>,
}

/// Keys kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

impl LocalCounters {
    /// The script's RESERVE, in process: `(0, false)` when counted, else the seconds to wait
    /// and whether the first key (the account's) is among the limits reached.
    fn reserve(&self, keys: [(&str, u32); 2], window_secs: i64, now: i64) -> (u64, bool) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, end)| *end > now);
        }
        let mut wait = 0;
        let mut account = false;
        for (i, (key, limit)) in keys.into_iter().enumerate() {
            if let Some(&(count, end)) = map.get(key).filter(|(_, end)| *end > now)
                && count >= limit
            {
                wait = wait.max(u64::try_from(end - now).unwrap_or(1).max(1));
                account |= i == 0;
            }
        }
        if wait > 0 {
            return (wait, account);
        }
        for (key, _) in keys {
            let entry = map.entry(key.to_owned()).or_insert((0, now + window_secs));
            if entry.1 <= now {
                *entry = (0, now + window_secs);
            }
            entry.0 += 1;
        }
        (0, false)
    }

    /// Forgets the account's counter (a lifted lock).
    fn clear(&self, account_key: &str) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(account_key);
    }

    /// The script's RELEASE, in process.
    fn release(&self, account_key: &str, ip_key: &str) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(account_key);
        if let Some((count, _)) = map.get_mut(ip_key) {
            *count = count.saturating_sub(1);
        }
    }
}

pub struct LoginThrottle<'a> {
    redis: &'a Redis,
    local: &'a LocalCounters,
    outage: &'a OutageLog,
    clock: &'a Clock,
    account_key: String,
    ip_key: String,
    max_account: u32,
    max_ip: u32,
    window_secs: u64,
}

impl<'a> LoginThrottle<'a> {
    /// The throttle of a login for `email` from `ip`.
    pub fn new(auth: &'a Auth, email: &LoginEmail, ip: &str) -> Self {
        Self::for_subject(auth, "account", email.throttle_subject(), ip)
    }

    /// The throttle of a client authenticating as `client_id` from `ip`.
    pub fn for_client(auth: &'a Auth, client_id: &str, ip: &str) -> Self {
        Self::for_subject(auth, "client", client_id, ip)
    }

    fn for_subject(auth: &'a Auth, kind: &str, subject: &str, ip: &str) -> Self {
        let settings = &auth.settings;
        Self {
            redis: &auth.redis,
            local: &auth.throttle_fallback,
            outage: &auth.throttle_outage,
            clock: &auth.clock,
            account_key: subject_key(&auth.redis, kind, subject),
            ip_key: auth.redis.key(&format!("{{login}}:ip:{ip}")),
            max_account: settings.max_failed_logins,
            max_ip: settings.max_failed_logins.saturating_mul(4),
            window_secs: settings.login_window_secs,
        }
    }

    /// Counts this attempt against both limits, or says how long to wait, in one round trip.
    pub async fn reserve(&self) -> Attempt {
        let mut call = RESERVE.prepare_invoke();
        call.key(&self.account_key)
            .key(&self.ip_key)
            .arg(self.max_account)
            .arg(self.max_ip)
            .arg(self.window_secs.max(1));
        let (wait, account) = match self.redis.invoke::<(i64, i64)>(&call).await {
            Ok((wait, account)) => {
                if self.outage.succeeded() {
                    tracing::info!("login throttle: Redis answers again; counting there");
                }
                (u64::try_from(wait).unwrap_or(1), account == 1)
            }
            Err(e) => {
                if self.outage.failed() {
                    tracing::warn!(error = %e,
                        "login throttle: Redis unavailable; counting in this process until it answers");
                }
                self.local.reserve(
                    [
                        (&self.account_key, self.max_account),
                        (&self.ip_key, self.max_ip),
                    ],
                    crate::settings::secs(self.window_secs.max(1)),
                    self.clock.now().timestamp(),
                )
            }
        };
        match wait {
            0 => Attempt::Reserved,
            wait => Attempt::Blocked {
                retry_after_secs: wait.max(1),
                account,
            },
        }
    }

    /// The attempt succeeded: it was not a failed guess, so its slot is given back.
    pub async fn release(&self) {
        let mut call = RELEASE.prepare_invoke();
        call.key(&self.account_key).key(&self.ip_key);
        if let Err(e) = self.redis.invoke::<i64>(&call).await {
            tracing::debug!(error = %e, "could not reset the login throttle (Redis)");
        }
        // The attempt may have been counted here during an outage; giving it back is harmless
        // when it was not.
        self.local.release(&self.account_key, &self.ip_key);
    }
}

/// The counter key of an account (`kind` `account`, by normalised email) or a client
/// (`client`, by client id): a hash of the subject, never the value itself. Every login counter
/// carries the hash tag `{login}`: the scripts count an attempt against its subject and its
/// address at once, which Redis Cluster allows only within one slot.
fn subject_key(redis: &Redis, kind: &str, subject: &str) -> String {
    let hash = hex::encode(Sha256::digest(subject.as_bytes()));
    redis.key(&format!("{{login}}:{kind}:{hash}"))
}

/// Lifts the account's login lock (its failed-login counter), as a new password or an
/// operator's `user unlock` does. True when there was a counter to clear. The per-address
/// counters stay: they protect every account, and an operator unlocking one account does not
/// vouch for the address that guessed at it.
pub async fn clear_account(auth: &Auth, email: &Email) -> anyhow::Result<bool> {
    let key = subject_key(&auth.redis, "account", email.as_str());
    auth.throttle_fallback.clear(&key);
    let removed: i64 = auth.redis.run(redis::cmd("DEL").arg(&key)).await?;
    Ok(removed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counters_allow_the_limit_per_window_then_say_how_long_to_wait() {
        let local = LocalCounters::default();
        let keys = [("a", 2), ("ip", 3)];
        assert_eq!(local.reserve(keys, 60, 1000), (0, false));
        assert_eq!(local.reserve(keys, 60, 1010), (0, false));
        assert_eq!(local.reserve(keys, 60, 1020), (40, true));
        // Another account from the same address: one IP slot is left.
        assert_eq!(local.reserve([("b", 2), ("ip", 3)], 60, 1020), (0, false));
        assert_eq!(local.reserve([("c", 2), ("ip", 3)], 60, 1020), (40, false));
        local.release("a", "ip");
        assert_eq!(local.reserve(keys, 60, 1030), (0, false));
        local.clear("a");
        // A new window starts afresh.
        assert_eq!(local.reserve([("b", 2), ("ip", 3)], 60, 1060), (0, false));
    }
}

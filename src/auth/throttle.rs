//! Login throttling in Redis, per account and per client IP, shared by every instance.
//!
//! Every login attempt first *reserves* a slot: one Lua script checks both counters and, when
//! neither is at its limit, increments both, all in one atomic step before the password is
//! verified. A burst of concurrent attempts therefore gets exactly as many guesses as the same
//! attempts one after another (`auth.max_failed_logins` per account, four times that per IP,
//! which may be a NAT shared by many people, within `auth.login_window_secs`); the rest get 429
//! with `Retry-After` until the window ends. A successful login gives its slot back: the account
//! counter is cleared and the IP counter decremented, so only failures accumulate.
//!
//! If Redis is unreachable the throttle fails open (logins still work, a warning is logged):
//! locking everyone out is worse than a short window without throttling. Account keys hold a
//! hash of the email, never the address itself.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::domain::{Email, LoginEmail};
use crate::redis_client::Redis;
use crate::settings::AuthSettings;

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
    /// A limit is reached: wait this many seconds. `account` when the account's own limit is
    /// (the lock a new password or `user unlock` lifts), not only the client address's.
    Blocked {
        retry_after_secs: u64,
        account: bool,
    },
    /// Redis did not answer: the attempt goes ahead uncounted.
    Unthrottled,
}

pub struct LoginThrottle<'a> {
    redis: &'a Redis,
    account_key: String,
    ip_key: String,
    max_account: u32,
    max_ip: u32,
    window_secs: u64,
}

impl<'a> LoginThrottle<'a> {
    pub fn new(redis: &'a Redis, settings: &AuthSettings, email: &LoginEmail, ip: &str) -> Self {
        Self {
            redis,
            account_key: account_key(redis, email.throttle_subject()),
            ip_key: redis.key(&format!("login:ip:{ip}")),
            max_account: settings.max_failed_logins,
            max_ip: settings.max_failed_logins.saturating_mul(4),
            window_secs: settings.login_window_secs,
        }
    }

    /// Counts this attempt against both limits, or says how long to wait, in one round trip.
    pub async fn reserve(&self) -> Attempt {
        let result: anyhow::Result<(i64, i64)> = async {
            let mut conn = self.redis.conn().await?;
            let mut call = RESERVE.prepare_invoke();
            call.key(&self.account_key)
                .key(&self.ip_key)
                .arg(self.max_account)
                .arg(self.max_ip)
                .arg(self.window_secs.max(1));
            Ok(call.invoke_async(&mut conn).await?)
        }
        .await;
        match result {
            Ok((0, _)) => Attempt::Reserved,
            Ok((wait, account)) => Attempt::Blocked {
                retry_after_secs: u64::try_from(wait).unwrap_or(1).max(1),
                account: account == 1,
            },
            Err(e) => {
                tracing::warn!(error = %e, "login throttle unavailable (Redis); allowing the attempt");
                Attempt::Unthrottled
            }
        }
    }

    /// The attempt succeeded: it was not a failed guess, so its slot is given back.
    pub async fn release(&self) {
        let result: anyhow::Result<()> = async {
            let mut conn = self.redis.conn().await?;
            let mut call = RELEASE.prepare_invoke();
            call.key(&self.account_key).key(&self.ip_key);
            let _: i64 = call.invoke_async(&mut conn).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not reset the login throttle (Redis)");
        }
    }
}

/// The account counter's key: a hash of the normalised email, never the address itself.
fn account_key(redis: &Redis, subject: &str) -> String {
    let email_hash = hex::encode(Sha256::digest(subject.as_bytes()));
    redis.key(&format!("login:account:{email_hash}"))
}

/// Lifts the account's login lock (its failed-login counter), as a new password or an
/// operator's `user unlock` does. True when there was a counter to clear. The per-address
/// counters stay: they protect every account, and an operator unlocking one account does not
/// vouch for the address that guessed at it.
pub async fn clear_account(redis: &Redis, email: &Email) -> anyhow::Result<bool> {
    let mut conn = redis.conn().await?;
    let removed: i64 = redis::cmd("DEL")
        .arg(account_key(redis, email.as_str()))
        .query_async(&mut conn)
        .await?;
    Ok(removed > 0)
}

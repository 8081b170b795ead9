//! Login throttling in Redis, per account and per client IP, shared by every instance.
//!
//! A counter per key counts failed logins in a fixed window (`auth.login_window_secs`); at
//! `auth.max_failed_logins` for an account (four times that for an IP, which may be a NAT shared
//! by many people) further attempts get 429 with `Retry-After` until the window ends. A
//! successful login resets the account counter. If Redis is unreachable the throttle fails open
//! (logins still work, a warning is logged): locking everyone out is worse than a short window
//! without throttling. Account keys hold a hash of the email, never the address itself.

use sha2::{Digest, Sha256};

use super::domain::Email;
use crate::redis_client::Redis;
use crate::settings::AuthSettings;

pub struct LoginThrottle<'a> {
    redis: &'a Redis,
    account_key: String,
    ip_key: String,
    max_account: u32,
    max_ip: u32,
    window_secs: u64,
}

impl<'a> LoginThrottle<'a> {
    pub fn new(redis: &'a Redis, settings: &AuthSettings, email: &str, ip: &str) -> Self {
        let email_hash = hex::encode(Sha256::digest(
            Email::parse(email)
                .map(|e| e.as_str().to_owned())
                .unwrap_or_else(|_| email.to_owned())
                .as_bytes(),
        ));
        Self {
            redis,
            account_key: redis.key(&format!("login:account:{email_hash}")),
            ip_key: redis.key(&format!("login:ip:{ip}")),
            max_account: settings.max_failed_logins,
            max_ip: settings.max_failed_logins.saturating_mul(4),
            window_secs: settings.login_window_secs,
        }
    }

    /// `Some(seconds)` to wait when either counter is at its limit.
    pub async fn blocked_for(&self) -> Option<u64> {
        let result: anyhow::Result<(Option<u32>, Option<u32>, i64, i64)> = async {
            let mut conn = self.redis.conn().await?;
            let (a, i, ta, ti) = redis::pipe()
                .get(&self.account_key)
                .get(&self.ip_key)
                .ttl(&self.account_key)
                .ttl(&self.ip_key)
                .query_async(&mut conn)
                .await?;
            Ok((a, i, ta, ti))
        }
        .await;
        match result {
            Ok((account, ip, account_ttl, ip_ttl)) => {
                let mut wait = 0i64;
                if account.unwrap_or(0) >= self.max_account {
                    wait = wait.max(account_ttl.max(1));
                }
                if ip.unwrap_or(0) >= self.max_ip {
                    wait = wait.max(ip_ttl.max(1));
                }
                (wait > 0).then(|| u64::try_from(wait).unwrap_or(1))
            }
            Err(e) => {
                tracing::warn!(error = %e, "login throttle unavailable (Redis); allowing the attempt");
                None
            }
        }
    }

    pub async fn record_failure(&self) {
        let result: anyhow::Result<()> = async {
            let mut conn = self.redis.conn().await?;
            let window = self.window_secs.max(1);
            let _: () = redis::pipe()
                .atomic()
                .incr(&self.account_key, 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(&self.account_key)
                .arg(window)
                .arg("NX")
                .ignore()
                .incr(&self.ip_key, 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(&self.ip_key)
                .arg(window)
                .arg("NX")
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record a failed login (Redis)");
        }
    }

    pub async fn reset_account(&self) {
        if let Err(e) = self
            .redis
            .run::<()>(redis::cmd("DEL").arg(&self.account_key))
            .await
        {
            tracing::warn!(error = %e, "could not reset the login throttle (Redis)");
        }
    }
}

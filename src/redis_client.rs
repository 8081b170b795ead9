//! Redis: the pool and the key prefix. Redis is the broker, the cache and the lock service, never
//! the record: everything here may vanish (a restart without persistence) and the service must
//! cope. Every key the service writes goes through [`Redis::key`], so a deployment (or a test)
//! owns exactly the keys under its prefix.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Config, Connection, Pool, Runtime};
use secrecy::ExposeSecret;

use crate::settings::RedisSettings;

#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    prefix: String,
    timeout: Duration,
}

impl Redis {
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        let mut config = Config::from_url(settings.url.expose_secret());
        let timeout = Duration::from_millis(settings.timeout_ms);
        config.pool = Some(deadpool_redis::PoolConfig {
            max_size: settings.pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..Default::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .context("redis.url: cannot build a Redis pool")?;
        Ok(Self {
            pool,
            prefix: settings.key_prefix.clone(),
            timeout,
        })
    }

    /// The full key for `name` under this deployment's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A pooled connection, failing within the configured timeout when Redis is away.
    pub async fn conn(&self) -> anyhow::Result<Connection> {
        tokio::time::timeout(self.timeout, self.pool.get())
            .await
            .map_err(|_| anyhow::anyhow!("timed out getting a Redis connection"))?
            .context("getting a Redis connection")
    }

    /// Runs one command with the configured timeout.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis command timed out"))?
            .context("Redis command failed")
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        anyhow::ensure!(pong == "PONG", "unexpected PING answer {pong}");
        Ok(())
    }

    pub fn status(&self) -> deadpool_redis::Status {
        self.pool.status()
    }
}

/// Remembers whether Redis is currently failing for one purpose, so that a fallback is logged
/// once when an outage begins and once when it ends, not once per request.
#[derive(Debug, Default)]
pub struct OutageLog {
    down: std::sync::atomic::AtomicBool,
}

impl OutageLog {
    /// Records a failure; `true` when it starts an outage (the caller logs it).
    pub fn failed(&self) -> bool {
        !self.down.swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a success; `true` when it ends an outage (the caller logs it).
    pub fn succeeded(&self) -> bool {
        self.down.swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

impl Redis {
    /// Runs a Lua script with the configured timeout (a script call otherwise waits as long as
    /// the connection does).
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(self.timeout, call.invoke_async::<T>(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis script timed out"))?
            .context("Redis script failed")
    }
}

#[cfg(test)]
mod tests {
    use super::OutageLog;

    #[test]
    fn an_outage_is_reported_once_when_it_begins_and_once_when_it_ends() {
        let log = OutageLog::default();
        assert!(!log.succeeded(), "no outage yet: nothing ends");
        assert!(log.failed(), "the first failure begins the outage");
        assert!(
            !log.failed() && !log.failed(),
            "later failures are the same outage"
        );
        assert!(log.succeeded(), "the first success ends it");
        assert!(!log.succeeded());
        assert!(log.failed(), "a new outage is reported again");
    }
}

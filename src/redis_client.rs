//! Redis: the pool and the key prefix. Redis is the broker, the cache and the lock service, never
//! the record: everything here may vanish (a restart without persistence) and the service must
//! cope. Every key the service writes goes through [`Redis::key`], so a deployment (or a test)
//! owns exactly the keys under its prefix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Config, Connection, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use secrecy::ExposeSecret;

use crate::settings::RedisSettings;

#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    /// The connection every single command and script of this process shares ([`Redis::run`],
    /// [`Redis::invoke`]). A multiplexed connection pipelines concurrent commands on one
    /// socket, so a command pays one round trip, not two: a pooled connection is checked by
    /// deadpool before every use (an `UNWATCH` + `PING` round trip), which doubled the cost of
    /// the per-request limiter. Dropped after any failure, so the next command connects
    /// afresh. Blocking reads (the task queue's) keep using the pool ([`Redis::conn`]), so
    /// they never hold up these.
    shared: Arc<Mutex<Option<MultiplexedConnection>>>,
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
            shared: Arc::default(),
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

    /// The shared connection, connecting it (through the pool's settings) when there is none.
    async fn shared(&self) -> anyhow::Result<MultiplexedConnection> {
        if let Some(conn) = self.lock_shared().clone() {
            return Ok(conn);
        }
        // Taken out of the pool for good: the pool may open another in its place.
        let conn = Connection::take(self.conn().await?);
        Ok(self.lock_shared().get_or_insert(conn).clone())
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the shared connection after a failure: whatever went wrong, the next command
    /// starts on a new one.
    fn forget_shared<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            *self.lock_shared() = None;
        }
        result
    }

    /// Runs a command that may block the connection it is sent on (`XREADGROUP … BLOCK`) on
    /// a pooled connection of its own, with the configured timeout added to what it may block.
    pub async fn run_blocking<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        blocks_for: Duration,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(self.timeout + blocks_for, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis command timed out"))?
            .context("Redis command failed")
    }

    /// Runs one command with the configured timeout, on the shared connection: never one that
    /// blocks (see [`Redis::run_blocking`]).
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut conn = self.shared().await?;
        let result = tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis command timed out"))
            .and_then(|r| r.context("Redis command failed"));
        self.forget_shared(result)
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
        let mut conn = self.shared().await?;
        let result = tokio::time::timeout(self.timeout, call.invoke_async::<T>(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis script timed out"))
            .and_then(|r| r.context("Redis script failed"));
        self.forget_shared(result)
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

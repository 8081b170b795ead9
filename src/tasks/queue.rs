//! The transport: a Redis stream of run ids read through one consumer group, a sorted set of
//! delayed runs (retries, deferred runs) by due time, and a hash from run id to its stream entry
//! so the reconciler can tell which runs Redis still knows. Messages carry only the run id; the
//! run itself is in PostgreSQL. Every multi-key change is one Lua script, so it is atomic.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use uuid::Uuid;

use crate::redis_client::Redis;

/// The consumer group every worker reads through.
const GROUP: &str = "workers";

/// Approximate bound of the stream (`XADD MAXLEN ~`). Acknowledged entries are deleted, so only
/// a backlog this large is trimmed, and the reconciler re-enqueues what trimming dropped.
pub const MAX_STREAM_LEN: usize = 10_000;

/// How long one `XREADGROUP` blocks, in milliseconds; below redis-rs's 500 ms response timeout.
const READ_BLOCK_MS: u64 = 250;

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Stream entry id.
    pub id: String,
    /// The run it carries, when the entry is well-formed.
    pub run_id: Option<Uuid>,
}

/// Lengths for the stats endpoint.
#[derive(Debug, Clone, Copy)]
pub struct QueueDepth {
    /// Entries in the stream: waiting or delivered and not yet acknowledged.
    pub stream: u64,
    /// Delivered to a worker and not yet acknowledged.
    pub pending: u64,
    /// Waiting in the delayed set for their due time.
    pub delayed: u64,
}

static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'run_id', ARGV[1])
        redis.call('HSET', KEYS[2], ARGV[1], entry)
        redis.call('ZREM', KEYS[3], ARGV[1])
        return entry
        ",
    )
});

static DELAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1])
        return 1
        ",
    )
});

static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
        for _, run in ipairs(due) do
            local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'run_id', run)
            redis.call('HSET', KEYS[3], run, entry)
            redis.call('ZREM', KEYS[1], run)
        end
        return #due
        ",
    )
});

static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[2] then
            redis.call('HDEL', KEYS[2], ARGV[3])
        end
        return 1
        ",
    )
});

static PRESENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out = {}
        for i, run in ipairs(ARGV) do
            out[i] = 0
            if redis.call('ZSCORE', KEYS[3], run) then
                out[i] = 1
            else
                local entry = redis.call('HGET', KEYS[2], run)
                if entry and #redis.call('XRANGE', KEYS[1], entry, entry) > 0 then
                    out[i] = 1
                end
            end
        end
        return out
        ",
    )
});

/// The task queue of one deployment (one key prefix).
#[derive(Clone)]
pub struct Queue {
    redis: Redis,
    stream: String,
    delayed: String,
    index: String,
}

impl Queue {
    /// The queue under `redis`'s key prefix.
    pub fn new(redis: Redis) -> Self {
        Self {
            // One hash tag: the scripts move runs between the three in one step, which Redis
            // Cluster allows only within a slot (docs/scaling.md, "Redis Cluster").
            stream: redis.key("{tasks}:stream"),
            delayed: redis.key("{tasks}:delayed"),
            index: redis.key("{tasks}:enqueued"),
            redis,
        }
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> anyhow::Result<T> {
        let mut conn = self.redis.conn().await?;
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Creates the consumer group (and the stream) if missing. Starting at `0` delivers entries
    /// added before the group existed, e.g. re-enqueued after Redis lost everything.
    pub async fn ensure_group(&self) -> anyhow::Result<()> {
        let created: redis::RedisResult<()> = {
            let mut conn = self.redis.conn().await?;
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await
        };
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Makes a run available to workers now.
    pub async fn push(&self, run_id: Uuid) -> anyhow::Result<()> {
        let mut inv = PUSH.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.index)
            .key(&self.delayed)
            .arg(run_id.to_string())
            .arg(MAX_STREAM_LEN);
        let _: String = self.invoke(&inv).await?;
        Ok(())
    }

    /// Parks a run until `due`; [`Queue::promote_due`] moves it to the stream then.
    pub async fn delay(&self, run_id: Uuid, due: DateTime<Utc>) -> anyhow::Result<()> {
        let mut inv = DELAY.prepare_invoke();
        inv.key(&self.delayed)
            .key(&self.index)
            .arg(run_id.to_string())
            .arg(due.timestamp_millis());
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    /// Moves delayed runs that are due by `now` to the stream; returns how many.
    pub async fn promote_due(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let mut inv = PROMOTE.prepare_invoke();
        inv.key(&self.delayed)
            .key(&self.stream)
            .key(&self.index)
            .arg(now.timestamp_millis())
            .arg(100)
            .arg(MAX_STREAM_LEN);
        self.invoke(&inv).await
    }

    /// Acknowledges and deletes a handled message.
    pub async fn ack(&self, message: &Message) -> anyhow::Result<()> {
        let mut inv = ACK.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.index)
            .arg(GROUP)
            .arg(&message.id)
            .arg(message.run_id.map(|id| id.to_string()).unwrap_or_default());
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    /// Which of `run_ids` Redis still holds, in the stream or in the delayed set.
    pub async fn present(&self, run_ids: &[Uuid]) -> anyhow::Result<Vec<bool>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = PRESENT.prepare_invoke();
        inv.key(&self.stream).key(&self.index).key(&self.delayed);
        for id in run_ids {
            inv.arg(id.to_string());
        }
        let flags: Vec<i64> = self.invoke(&inv).await?;
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }

    /// The next message for `consumer`: first one abandoned by another consumer for longer than
    /// `visibility_ms` (its worker presumably died), else a new one, waiting briefly.
    pub async fn next(
        &self,
        consumer: &str,
        visibility_ms: u64,
    ) -> anyhow::Result<Option<Message>> {
        let reclaimed: StreamAutoClaimReply = self
            .redis
            .run(
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(visibility_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            return Ok(Some(to_message(entry)));
        }
        // A blocking read: on a pooled connection of its own, never the shared one.
        let read: Option<StreamReadReply> = self
            .redis
            .run_blocking(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(READ_BLOCK_MS)
                    .arg("STREAMS")
                    .arg(&self.stream)
                    .arg(">"),
                std::time::Duration::from_millis(READ_BLOCK_MS),
            )
            .await?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next())
            .map(to_message))
    }

    /// Stream length, unacknowledged deliveries and delayed runs.
    pub async fn depth(&self) -> anyhow::Result<QueueDepth> {
        let mut conn = self.redis.conn().await?;
        let (stream, delayed): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.stream)
            .cmd("ZCARD")
            .arg(&self.delayed)
            .query_async(&mut conn)
            .await?;
        let pending: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        // XPENDING's summary starts with the count; no group yet means nothing pending.
        let pending = match pending {
            Ok(redis::Value::Array(items)) => match items.first() {
                Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            },
            _ => 0,
        };
        Ok(QueueDepth {
            stream,
            pending,
            delayed,
        })
    }
}

fn to_message(entry: redis::streams::StreamId) -> Message {
    let run_id = entry
        .get::<String>("run_id")
        .and_then(|s| Uuid::parse_str(&s).ok());
    Message {
        id: entry.id,
        run_id,
    }
}

//! Group commit for conversions at the rate in force: concurrent `POST /conversions` of one
//! process are written together, by one statement ([`store::create`]) and one commit, and each
//! caller gets its own row's answer only once that statement has committed
//! (`synchronous_commit` stays on: a 201 is never sent for a row that is not durable). Owns the
//! gathering and the hand-back, nothing of what a row means: the per-row rules (currency check,
//! `Idempotency-Key` claim, outbox rows) are [`store::create`]'s, the same statement for a
//! group of one as for a group of 64.
//!
//! How a group forms (the classic trick: wait only while the database is busy anyway):
//! - a conversion joins the queue; if one of `conversions.group_commit_max_in_flight` slots is
//!   free, its caller starts a writer task for that slot, on its own thread, which writes the
//!   queue's oldest conversions (up to `group_commit_max_rows`) as one statement;
//! - when its statement has committed, a writer writes what queued meanwhile as its next
//!   group, and frees its slot when nothing waits. While every slot is taken, conversions queue
//!   and leave together with the next writer that comes free; alone, a conversion leaves at
//!   once (no timer at low load);
//! - while another group is in flight, a writer may wait for company, at most
//!   `group_commit_max_wait_micros` after the first waiting conversion arrived (0 by default:
//!   measured, waiting was slower than leaving when a slot frees);
//! - two conversions with the same (partner, key) never share a statement (`ON CONFLICT DO
//!   UPDATE` cannot touch one row twice): the later one stays queued for a later group, so it
//!   sees the first one's key as any retry would.
//!
//! What a failure does: a statement that PostgreSQL refuses as a whole (a constraint one row
//! violates, a deadlock) committed nothing, so its conversions are written again one by one and
//! only the bad one fails. A broken connection or a pool timeout fails the group's callers with
//! that error (503), as it would have failed each of them alone. A caller that went away (its
//! client hung up) does not take its row out: a row handed over is written, and its answer is
//! dropped; a retry with the same `Idempotency-Key` finds it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::domain::ConversionError;
use super::store::{self, ConversionRow, Created, CreatedEvent, NewConversion, NewKey};
use crate::settings::ConversionSettings;

/// How groups form (`conversions.group_commit_*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most conversions in one statement (1: no grouping).
    pub max_rows: usize,
    /// How long a group may wait for more after its first conversion arrived, while another
    /// group is in flight.
    pub max_wait: Duration,
    /// Group statements in flight at once.
    pub max_in_flight: usize,
}

impl Limits {
    pub fn from_settings(settings: &ConversionSettings) -> Self {
        Self {
            max_rows: usize::try_from(settings.group_commit_max_rows)
                .unwrap_or(1)
                .max(1),
            max_wait: Duration::from_micros(settings.group_commit_max_wait_micros),
            max_in_flight: usize::try_from(settings.group_commit_max_in_flight)
                .unwrap_or(1)
                .max(1),
        }
    }
}

/// An `Idempotency-Key` a conversion claims, owned while it waits for its group.
#[derive(Debug, Clone)]
pub struct PendingKey {
    pub key: String,
    pub request_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// One conversion to write: the row, its key, its `conversion.created` event.
#[derive(Debug, Clone)]
pub struct Pending {
    pub row: ConversionRow,
    pub key: Option<PendingKey>,
    pub event_id: Uuid,
    /// The exact body of the event ([`crate::webhooks::outbox::body`]).
    pub payload: String,
}

impl Pending {
    fn as_new(&self) -> NewConversion<'_> {
        NewConversion {
            row: &self.row,
            key: self.key.as_ref().map(|k| NewKey {
                key: &k.key,
                request_hash: &k.request_hash,
                expires_at: k.expires_at,
            }),
            event: CreatedEvent {
                id: self.event_id,
                payload: &self.payload,
            },
        }
    }

    /// The (partner, key) no two conversions of one statement may share.
    fn claims(&self) -> Option<(Uuid, &str)> {
        self.key
            .as_ref()
            .map(|k| (self.row.partner_id, k.key.as_str()))
    }
}

/// The error of a group's statement, shared by every caller of the group. Its source is the
/// `sqlx::Error` itself, so that the error policy still sees a pool timeout or a broken
/// connection in the chain (a 503, not a 500).
#[derive(Debug, Clone)]
struct GroupFailed(Arc<sqlx::Error>);

impl std::fmt::Display for GroupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the group statement storing this conversion failed")
    }
}

impl std::error::Error for GroupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

enum Failed {
    /// This conversion's own statement failed.
    Alone(sqlx::Error),
    /// The statement of its whole group failed (not because of one row).
    Group(GroupFailed),
}

type Answer = Result<Created, Failed>;

struct Queued {
    pending: Pending,
    arrived: Instant,
    reply: oneshot::Sender<Answer>,
}

/// What waits, and how many group statements are in flight.
struct Queue {
    rows: VecDeque<Queued>,
    in_flight: usize,
}

/// The group committer of one process. Cheap to clone: every clone feeds the same groups.
#[derive(Clone)]
pub struct GroupCommit {
    queue: Arc<Mutex<Queue>>,
    db: PgPool,
    limits: Limits,
}

impl GroupCommit {
    pub fn new(db: PgPool, limits: Limits) -> Self {
        Self {
            queue: Arc::new(Mutex::new(Queue {
                rows: VecDeque::new(),
                in_flight: 0,
            })),
            db,
            limits,
        }
    }

    /// Opens every writer connection ahead of the first conversions, and has each plan the
    /// group statement, by running it with no rows (it writes nothing: zero rows in, zero
    /// out). A new connection's first group otherwise pays the connection, PostgreSQL's catalog
    /// caches for the tables the statement touches, and its generic plan (the first 4 s of
    /// `POST /conversions` after a start had a p99 of 55-90 ms against 15 ms after, all of it in
    /// the first second). The writers are opened by running one statement per writer at once:
    /// the pool finds none idle and opens one for each. A failure (PostgreSQL not up yet) is
    /// only logged; the writers then open with the first groups, as before.
    pub async fn open_writers(&self) {
        let runs = (0..self.limits.max_in_flight).map(|_| store::create(&self.db, &[]));
        let failed = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .filter_map(Result::err)
            .last();
        match failed {
            None => tracing::debug!(writers = self.db.size(), "group writers open"),
            Some(e) => {
                tracing::info!(error = %e, "group writers not opened ahead; they open with the first conversions")
            }
        }
    }

    /// How many conversions wait for a group (handed over, their statement not yet sent): what
    /// a test watches to know that requests will share the next group.
    pub fn waiting(&self) -> usize {
        self.lock().rows.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent rows.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `pending` with the next group; returns once its statement has committed (or
    /// failed).
    ///
    /// When a slot is free, the caller starts a writer task on its own thread (no hop to
    /// another thread at low load) that writes what is queued, then keeps writing whatever
    /// queued meanwhile until nothing is left. The writer is a task of its own, not part of
    /// this future, so a caller that goes away does not take its group's statement with it.
    pub async fn write(&self, pending: Pending) -> Result<Created, ConversionError> {
        let (reply, answer) = oneshot::channel();
        let start_writer = {
            let mut queue = self.lock();
            queue.rows.push_back(Queued {
                pending,
                arrived: Instant::now(),
                reply,
            });
            let free = queue.in_flight < self.limits.max_in_flight;
            if free {
                queue.in_flight += 1;
            }
            free
        };
        if start_writer {
            tokio::spawn(self.clone().writer());
        }
        match answer.await {
            Ok(Ok(created)) => Ok(created),
            Ok(Err(Failed::Alone(e))) => Err(e.into()),
            Ok(Err(Failed::Group(e))) => Err(anyhow::Error::new(e).into()),
            Err(_) => Err(anyhow::anyhow!("a conversion's group ended without an answer").into()),
        }
    }

    /// Holds one slot: writes groups while conversions wait, then frees the slot.
    async fn writer(self) {
        loop {
            let deadline = {
                let queue = self.lock();
                let others_in_flight = queue.in_flight > 1;
                match queue.rows.front() {
                    Some(first)
                        if others_in_flight
                            && !self.limits.max_wait.is_zero()
                            && queue.rows.len() < self.limits.max_rows =>
                    {
                        Some(first.arrived + self.limits.max_wait)
                    }
                    _ => None,
                }
            };
            if let Some(deadline) = deadline {
                // Another group is being written: wait a little for company.
                tokio::time::sleep_until(deadline).await;
            }
            let group = {
                let mut queue = self.lock();
                let group = take_group(&mut queue.rows, self.limits.max_rows);
                if group.is_empty() {
                    queue.in_flight -= 1;
                    return;
                }
                group
            };
            flush(&self.db, group).await;
        }
    }
}

/// The oldest waiting conversions, up to `max_rows`, no two with one (partner, key): a later
/// one with a key already in the group stays queued, in its place, for a later group.
fn take_group(rows: &mut VecDeque<Queued>, max_rows: usize) -> Vec<Queued> {
    let mut group = Vec::new();
    let mut keys: HashSet<(Uuid, String)> = HashSet::new();
    let mut kept = VecDeque::new();
    while let Some(q) = rows.pop_front() {
        if group.len() >= max_rows {
            kept.push_back(q);
            kept.append(rows);
            break;
        }
        let fresh = match q.pending.claims() {
            Some((partner, key)) => keys.insert((partner, key.to_owned())),
            None => true,
        };
        if fresh {
            group.push(q);
        } else {
            kept.push_back(q);
        }
    }
    *rows = kept;
    group
}

/// Writes one group and answers each of its callers.
async fn flush(db: &PgPool, group: Vec<Queued>) {
    match write(db, &group).await {
        Ok(answers) => {
            for (q, answer) in group.into_iter().zip(answers) {
                // A caller that went away does not want its answer; its row is stored.
                let _ = q.reply.send(Ok(answer));
            }
        }
        Err(e) if group.len() > 1 && refused_as_a_whole(&e) => {
            tracing::warn!(error = %e, conversions = group.len(),
                "a group of conversions was refused; writing them one by one");
            for q in group {
                let answer = write(db, std::slice::from_ref(&q))
                    .await
                    .and_then(|mut answers| {
                        answers.pop().ok_or_else(|| {
                            sqlx::Error::Protocol("no answer for a conversion".into())
                        })
                    })
                    .map_err(Failed::Alone);
                let _ = q.reply.send(answer);
            }
        }
        Err(e) if group.len() == 1 => {
            if let Some(q) = group.into_iter().next() {
                let _ = q.reply.send(Err(Failed::Alone(e)));
            }
        }
        Err(e) => {
            let shared = GroupFailed(Arc::new(e));
            for q in group {
                let _ = q.reply.send(Err(Failed::Group(shared.clone())));
            }
        }
    }
}

async fn write(db: &PgPool, group: &[Queued]) -> Result<Vec<Created>, sqlx::Error> {
    let rows: Vec<NewConversion<'_>> = group.iter().map(|q| q.pending.as_new()).collect();
    store::create(db, &rows).await
}

/// PostgreSQL refused the statement itself (a constraint, a deadlock, a value it would not
/// take), so nothing of it was committed and each row may be tried alone. Not a connection
/// that broke or a database that is going away: those would fail each row alike.
fn refused_as_a_whole(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_)) && !crate::db::is_unavailable(e)
}

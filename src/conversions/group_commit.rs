//! Group commit for conversions at the rate in force: concurrent `POST /conversions` of one
//! process are written together, by one statement ([`store::create`]) and one commit, and each
//! caller gets its own row's answer only once that statement has committed
//! (`synchronous_commit` stays on: a 201 is never sent for a row that is not durable). Owns the
//! gathering and the hand-back, nothing of what a row means: the per-row rules (currency check,
//! `Idempotency-Key` claim, outbox rows) are [`store::create`]'s, the same statement for a
//! group of one as for a group of 64.
//!
//! How a group forms (the classic trick: wait only while the database is busy anyway):
//! - one task, the gatherer, takes conversions off a channel in arrival order;
//! - a group needs one of `conversions.group_commit_max_in_flight` slots. While every slot is
//!   taken, conversions queue in the channel and leave together as soon as a slot frees;
//! - with a free slot, a conversion that finds no other group in flight leaves at once, with
//!   whatever else is queued (no timer at low load). While another group is in flight, a group
//!   waits for more conversions, at most `group_commit_max_wait_micros` after its first one
//!   arrived, or until it has `group_commit_max_rows`;
//! - two conversions with the same (partner, key) never share a statement (`ON CONFLICT DO
//!   UPDATE` cannot touch one row twice): the later one is held for a later group, so it sees
//!   the first one's key as any retry would.
//!
//! What a failure does: a statement that PostgreSQL refuses as a whole (a constraint one row
//! violates, a deadlock) committed nothing, so its conversions are written again one by one and
//! only the bad one fails. A broken connection or a pool timeout fails the group's callers with
//! that error (503), as it would have failed each of them alone. A caller that went away (its
//! client hung up) does not take its row out: a row handed over is written, and its answer is
//! dropped; a retry with the same `Idempotency-Key` finds it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
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

/// The group committer of one process. Cheap to clone; the gatherer stops when the last clone
/// is dropped (after writing what was handed over).
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Queued>,
    /// Conversions handed over and not yet in a group's statement.
    waiting: Arc<AtomicUsize>,
}

impl GroupCommit {
    /// Starts the gatherer on the current tokio runtime.
    pub fn start(db: PgPool, limits: Limits) -> Self {
        // Unbounded: each waiting HTTP request holds at most one entry, so the server's own
        // connection limits bound it.
        let (queue, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(gather(rx, db, limits, waiting.clone()));
        Self { queue, waiting }
    }

    /// How many conversions wait for a group (handed over, their statement not yet sent): what
    /// a test watches to know that requests will share the next group.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Writes `pending` with the next group; returns once its statement has committed (or
    /// failed).
    pub async fn write(&self, pending: Pending) -> Result<Created, ConversionError> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            pending,
            arrived: Instant::now(),
            reply,
        };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(queued).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(anyhow::anyhow!("the conversions' group committer has stopped").into());
        }
        match answer.await {
            Ok(Ok(created)) => Ok(created),
            Ok(Err(Failed::Alone(e))) => Err(e.into()),
            Ok(Err(Failed::Group(e))) => Err(anyhow::Error::new(e).into()),
            Err(_) => Err(anyhow::anyhow!("a conversion's group ended without an answer").into()),
        }
    }
}

/// The conversions of the next statement.
struct Group {
    rows: Vec<Queued>,
    keys: HashSet<(Uuid, String)>,
    max_rows: usize,
}

impl Group {
    fn new(max_rows: usize) -> Self {
        Self {
            rows: Vec::with_capacity(max_rows.min(64)),
            keys: HashSet::new(),
            max_rows,
        }
    }

    fn full(&self) -> bool {
        self.rows.len() >= self.max_rows
    }

    /// Takes `q` into the group, or holds it for a later one when the group is full or already
    /// claims its key.
    fn offer(&mut self, q: Queued, held: &mut VecDeque<Queued>) {
        if self.full() {
            held.push_back(q);
            return;
        }
        if let Some((partner, key)) = q.pending.claims()
            && !self.keys.insert((partner, key.to_owned()))
        {
            held.push_back(q);
            return;
        }
        self.rows.push(q);
    }
}

async fn gather(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    db: PgPool,
    limits: Limits,
    waiting: Arc<AtomicUsize>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_in_flight));
    // Conversions that arrived but could not join the last group (full, or a key it claimed),
    // oldest first: each next group starts with them.
    let mut held: VecDeque<Queued> = VecDeque::new();
    loop {
        if held.is_empty() {
            match rx.recv().await {
                Some(q) => held.push_back(q),
                None => return,
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let others_in_flight = (limits.max_in_flight - 1).saturating_sub(slots.available_permits());
        let mut group = Group::new(limits.max_rows);
        for q in std::mem::take(&mut held) {
            group.offer(q, &mut held);
        }
        while !group.full() {
            match rx.try_recv() {
                Ok(q) => group.offer(q, &mut held),
                Err(_) => break,
            }
        }
        if others_in_flight > 0 && !limits.max_wait.is_zero() {
            let first = group.rows.first().map_or_else(Instant::now, |q| q.arrived);
            let deadline = first + limits.max_wait;
            while !group.full() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(q)) => group.offer(q, &mut held),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        waiting.fetch_sub(group.rows.len(), Ordering::Relaxed);
        tokio::spawn(flush(db.clone(), group.rows, slot));
    }
}

/// Writes one group and answers each of its callers; the slot is freed when this returns.
async fn flush(db: PgPool, group: Vec<Queued>, _slot: OwnedSemaphorePermit) {
    match write(&db, &group).await {
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
                let answer = write(&db, std::slice::from_ref(&q))
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

//! The shared streaming replica of the test PostgreSQL (`scripts/replica`, started by
//! `make test` and CI, and here if it does not run), and the one lock under which a test may
//! pause its replay.
//!
//! Why sharing one replica is safe: only apps spawned with [`TestApp::replica_url_for`] read
//! from it, and every such test takes [`ReplicaLock`] first, so no test sees the replica paused
//! by another. Tests without a replica read the primary only, and even a test that read a
//! paused replica would only see history go to the primary once the lag bound passed: a
//! replica read is never the only path to a row. The lock is a PostgreSQL advisory lock on
//! the primary, so test processes of other checkouts sharing the servers wait for it too.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection};

use super::TestApp;

static REPLICA: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// The replica server's URL without a database (`postgres://postgres@127.0.0.1:5433`), after
/// starting it if needed (the script is idempotent and serialises concurrent starts).
pub async fn replica_server() -> String {
    REPLICA
        .get_or_init(|| async {
            let out = tokio::task::spawn_blocking(|| {
                std::process::Command::new("scripts/replica")
                    .arg("start")
                    .output()
            })
            .await
            .unwrap()
            .expect("scripts/replica runs");
            assert!(
                out.status.success(),
                "scripts/replica start failed (the replica tests need a streaming replica of \
                 127.0.0.1:5432):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .await
        .clone()
}

/// The advisory lock key of "this test may pause the shared replica's replay".
const REPLAY_LOCK: i64 = 72_217_027;

/// Held while a test uses the replica: replay is running when it is taken (whatever a crashed
/// test left) and resumed when it is dropped.
pub struct ReplicaLock {
    /// The primary connection holding the advisory lock; closing it releases the lock.
    _primary: PgConnection,
    replica_server: String,
}

impl ReplicaLock {
    pub async fn take(app: &TestApp) -> Self {
        let replica_server = replica_server().await;
        // The maintenance database: advisory locks are per database, and this one is shared.
        let options = super::database::maintenance_options(&app.settings);
        let mut primary = PgConnection::connect_with(&options).await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(REPLAY_LOCK)
            .execute(&mut primary)
            .await
            .unwrap();
        let lock = Self {
            _primary: primary,
            replica_server,
        };
        lock.resume().await;
        lock
    }

    async fn replica(&self) -> PgConnection {
        PgConnection::connect(&format!("{}/postgres", self.replica_server))
            .await
            .unwrap()
    }

    /// Pauses replay on the replica, and waits until it is paused.
    pub async fn pause(&self) {
        let mut replica = self.replica().await;
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(&mut replica)
            .await
            .unwrap();
        poll(Duration::from_secs(30), "replay to pause", || async {
            let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
                .fetch_one(&mut self.replica().await)
                .await
                .unwrap();
            state == "paused"
        })
        .await;
    }

    /// Resumes replay on the replica.
    pub async fn resume(&self) {
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(&mut self.replica().await)
            .await
            .unwrap();
    }

    /// Waits until the replica has replayed everything the primary wrote so far.
    pub async fn caught_up(&self, app: &TestApp) {
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&app.db)
            .await
            .unwrap();
        poll(
            Duration::from_secs(60),
            "the replica to catch up",
            || async {
                sqlx::query_scalar::<_, bool>("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(&target)
                    .fetch_one(&mut self.replica().await)
                    .await
                    .unwrap()
            },
        )
        .await;
    }
}

impl Drop for ReplicaLock {
    fn drop(&mut self) {
        // Drop cannot await: resume with psql, so that replay runs again even when the test
        // failed half-way (a panic unwinds through here).
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-d",
                &format!("{}/postgres", self.replica_server),
                "-c",
                "SELECT pg_wal_replay_resume()",
            ])
            .output();
    }
}

/// Polls `done` until it says yes, failing after `limit`.
pub async fn poll<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An app with the default currencies and rates whose lag-tolerant reads go to the shared
/// replica (its copy of this test's database), lagging at most `max_lag_secs`.
pub async fn spawn_app_with_replica(max_lag_secs: u64) -> TestApp {
    let server = replica_server().await;
    super::spawn_app_with_rates(|s| {
        let url = s.database.url.expose_secret().to_owned();
        let name = url.rsplit_once('/').unwrap().1;
        s.database.replica_url = SecretString::from(format!("{server}/{name}"));
        s.database.replica_max_lag_secs = max_lag_secs;
    })
    .await
}

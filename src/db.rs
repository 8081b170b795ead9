//! PostgreSQL: the pool, database creation and the embedded migrations.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::settings::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = settings
        .url
        .expose_secret()
        .parse()
        .context("database.url: not a valid PostgreSQL URL")?;
    Ok(service_session(options))
}

/// What every session of the service sets, whatever its pool: statements logged at debug, slow
/// ones (500 ms) at warn, and JIT off. Its statements are short index probes, but on the
/// partitioned `conversions` a custom plan's cost estimate (every partition counted) crosses
/// `jit_above_cost`, and compiling then costs far more than running: the summary's statement
/// took 150-230 ms with JIT and 3.4 ms without on 1 M rows over 12 monthly partitions
/// (`EXPLAIN ANALYZE`, docs/scaling.md).
fn service_session(options: PgConnectOptions) -> PgConnectOptions {
    options
        .options([("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500))
}

/// A pool that connects on first use, so that the API can start (and answer `/health`) while
/// PostgreSQL is briefly away.
///
/// No `test_before_acquire`: sqlx would ping every idle connection before handing it out, one
/// extra round trip before each query, which doubled the round trips of a conversion. A
/// connection that died while idle fails its next query instead; that error reads as
/// unavailability ([`is_unavailable`], a 503 with `Retry-After`) and sqlx drops the connection,
/// so the retry gets a fresh one.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(lazy_pool(
        settings.max_connections,
        Duration::from_millis(settings.acquire_timeout_ms),
    )
    .connect_lazy_with(connect_options(settings)?))
}

/// The options every pool of the service shares ([`pool`] says why no `test_before_acquire`).
fn lazy_pool(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .acquire_timeout(acquire_timeout)
}

/// Session settings of the pools that serve reads which may be a moment behind
/// ([`crate::replica::ReadPool`]: history lists, CSV exports, summaries, reports, rate series,
/// the monitor's charts), on the replica or on the primary alike:
/// - `plan_cache_mode = force_generic_plan`: those statements are written to keep their index
///   plans without the parameters' values (static statements per filter, infinities rather than
///   NULLs), and on the partitioned `conversions` a custom plan is planned afresh for every page
///   over every monthly partition and its indexes: 1.5 ms of planning for a 0.2 ms page at 10 M
///   rows over 16 partitions, which cut the history's throughput by 4 (docs/scaling.md). A
///   generic plan is made once per connection and statement, and prunes partitions when it runs.
/// - `default_transaction_read_only = on`: these pools never write; a write that strays onto
///   them fails at once on the primary as it would on a replica.
///
/// `options` already carry what every session of the service sets ([`service_session`]).
fn read_session(options: PgConnectOptions) -> PgConnectOptions {
    options
        .options([
            ("plan_cache_mode", "force_generic_plan"),
            ("default_transaction_read_only", "on"),
        ])
        // Told apart from the money path's sessions in `pg_stat_activity`.
        .application_name("currency-conversion reads")
}

/// The pool of the reads that may be a moment behind when they run on the primary (no replica
/// configured, or it lags or is down): connections of their own ([`read_session`]), at most
/// `database.read_max_connections`, so that a burst of history pages or exports neither waits
/// behind the money path's pool nor takes its connections. Lazy, like [`pool`].
pub fn primary_read_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(lazy_pool(
        settings.read_max_connections,
        Duration::from_millis(settings.acquire_timeout_ms),
    )
    .connect_lazy_with(read_session(connect_options(settings)?)))
}

/// The pool of the conversions' group writers ([`crate::conversions::group_commit`]): at most
/// `max_connections` connections to the same server and database as `primary`, with the same
/// acquire timeout, lazy, whose sessions plan generically (`plan_cache_mode =
/// force_generic_plan`). The group statement inserts into the partitioned `conversions` and
/// four other tables with a trigger; under the default setting PostgreSQL planned it afresh for
/// every group (the generic plan's estimate of an unnested array always looks dearer), and that
/// planning, not the writing, set the pace: `POST /conversions` went from 0.82-0.98 of
/// pgbench's one-row INSERT to 1.32-1.49 with generic plans (docs/benchmarks.md). The group
/// statement reads each row's held key by primary key (`LATERAL … LIMIT 1`), a plan that needs
/// no values.
pub fn group_writer_pool(primary: &PgPool, max_connections: u32) -> PgPool {
    let options = (*primary.connect_options())
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")])
        .application_name("currency-conversion group writer");
    let port = options.get_port();
    let over_tcp = options.get_socket().is_none() && !options.get_host().starts_with('/');
    lazy_pool(
        max_connections.max(1),
        primary.options().get_acquire_timeout(),
    )
    .after_connect(move |_, _| {
        Box::pin(async move {
            if over_tcp {
                no_delay_on_sockets_to(port);
            }
            Ok(())
        })
    })
    .connect_lazy_with(options)
}

/// Turns Nagle's algorithm off (`TCP_NODELAY`) on this process's TCP sockets whose peer port
/// is `port`; returns how many it set. sqlx offers no such option and no access to its socket,
/// so this runs when a group writer has just connected, over the process's open descriptors.
///
/// Why: a group statement is larger than the socket's first send buffer, so sqlx writes it in
/// two `write`s; with Nagle on, the second waits for the ACK of the first, and PostgreSQL,
/// which has no answer to carry it yet, delays that ACK by 40 ms. Every group of more than a
/// few rows paid that: `POST /conversions` p99 50-53 ms over TCP against 11 ms over a Unix
/// socket, at the same throughput (docs/benchmarks.md). PostgreSQL sets `TCP_NODELAY` on its
/// side for the same reason. A descriptor closed or reused meanwhile costs nothing: the calls
/// fail, or set the option on another socket, where it is harmless.
#[cfg(target_os = "linux")]
pub fn no_delay_on_sockets_to(port: u16) -> usize {
    use std::os::fd::BorrowedFd;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in fds.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for two system calls; if it was closed since
        // it was listed they fail with EBADF, and nothing is read or written through it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let to_port = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_port && socket.r#type().is_ok_and(|t| t == socket2::Type::STREAM) {
            set += usize::from(socket.set_tcp_nodelay(true).is_ok());
        }
    }
    set
}

#[cfg(not(target_os = "linux"))]
pub fn no_delay_on_sockets_to(_port: u16) -> usize {
    0
}

/// The read replica's pool when `database.replica_url` is set: lazy like the primary's, of the
/// same size and acquire timeout, with the read sessions' settings ([`read_session`]). Errors
/// name the key.
pub fn replica_pool(settings: &DatabaseSettings) -> anyhow::Result<Option<PgPool>> {
    let url = settings.replica_url.expose_secret();
    if url.is_empty() {
        return Ok(None);
    }
    let options: PgConnectOptions = url
        .parse()
        .context("database.replica_url: not a valid PostgreSQL URL")?;
    Ok(Some(
        lazy_pool(
            settings.max_connections,
            Duration::from_millis(settings.acquire_timeout_ms),
        )
        .connect_lazy_with(read_session(service_session(options))),
    ))
}

/// Creates the configured database when it does not exist (connecting to the `postgres`
/// maintenance database), then applies pending migrations. Errors say how to start PostgreSQL.
pub async fn create_and_migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let options = connect_options(settings)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .with_context(|| {
            format!(
                "PostgreSQL is not reachable at {}:{} (database.url / DATABASE_URL). Start it, e.g. `make up` or `pg_ctlcluster 15 main start`",
                options.get_host(),
                options.get_port()
            )
        })?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name,
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // The one statement not checked at compile time: a database name is an identifier, which
        // cannot be a bind parameter. It is quoted here, and comes from our own settings.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        #[allow(
            clippy::disallowed_methods,
            reason = "DDL with an identifier cannot be a checked query"
        )]
        let create = sqlx::query(sqlx::AssertSqlSafe(sql));
        match create.execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    admin.close().await.ok();
    let mut conn = PgConnection::connect_with(&options)
        .await
        .context("connecting to the service database")?;
    MIGRATOR
        .run(&mut conn)
        .await
        .context("applying database migrations")?;
    conn.close().await.ok();
    Ok(())
}

use sqlx::PgConnection;

/// Whether `err` means PostgreSQL could not be reached or is not accepting work (pool timeout,
/// refused or dropped connection, server shutting down), as opposed to a fault in a query. The
/// former is a 503 with `Retry-After` to a client; the latter a 500.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // What a connection closed by the peer mid-handshake reads as (e.g. "unexpected response
        // from SSLRequest"): a broken link, not a fault in our query.
        | sqlx::Error::Protocol(_) => true,
        // Class 08: connection exception; 57P01-03: shutting down or starting up; 53300: too many
        // connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_and_connection_errors_are_unavailability() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(is_unavailable(&sqlx::Error::Protocol(
            "unexpected response from SSLRequest: 0x00".into()
        )));
    }

    #[test]
    fn query_faults_are_not_unavailability() {
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod no_delay_tests {
    use super::*;

    #[test]
    fn no_delay_is_set_on_the_sockets_to_that_port_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let to_port = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let elsewhere = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_port.nodelay().unwrap());
        assert!(no_delay_on_sockets_to(port) >= 1);
        assert!(to_port.nodelay().unwrap());
        assert!(!elsewhere.nodelay().unwrap());
    }
}

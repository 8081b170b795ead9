//! Test databases: a template migrated once per migration set, and a fresh copy of it per test.

use currency_conversion::settings::Settings;
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

pub(super) fn maintenance_options(settings: &Settings) -> PgConnectOptions {
    let options: PgConnectOptions = settings.database.url.expose_secret().parse().unwrap();
    options.database("postgres")
}

/// Name of the template database: derived from the migrations, so a changed migration gets a
/// fresh template and an unchanged one is reused across runs.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut entries: Vec<_> = std::fs::read_dir("migrations")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        path.file_name().hash(&mut hasher);
        std::fs::read(&path).unwrap().hash(&mut hasher);
    }
    format!("ccs_test_template_{:016x}", hasher.finish())
}

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// How long a template of another migration set may go unused before a test run drops it. Far
/// longer than any test run, so that a run still using an older set (another checkout, another
/// branch) is never pulled from under it.
const STALE_TEMPLATE_SECS: i64 = 6 * 3600;

/// What a template's comment says: when a test run last started from it.
const LAST_USED: &str = "ccs test template, last used at ";

/// Drops the templates of earlier migration sets that no test run has used for
/// [`STALE_TEMPLATE_SECS`], and half-built ones. Called under the template lock, so nobody is
/// building one meanwhile. Marks `current` as used now; a template without a mark (from before
/// marks existed) gets one now and is dropped when it has gone unused that long since.
async fn drop_stale_templates(admin: &mut PgConnection, current: &str) {
    let now = chrono::Utc::now().timestamp();
    let mark = |name: &str| {
        sqlx::AssertSqlSafe(format!(
            "COMMENT ON DATABASE \"{name}\" IS '{LAST_USED}{now}'"
        ))
    };
    admin.execute(mark(current)).await.unwrap();
    let others: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
         WHERE datname LIKE 'ccs\\_test\\_template\\_%' AND datname <> $1",
    )
    .bind(current)
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    for (name, comment) in others {
        let last_used = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(LAST_USED))
            .and_then(|t| t.parse::<i64>().ok());
        let stale =
            name.ends_with("_building") || last_used.is_some_and(|t| now - t > STALE_TEMPLATE_SECS);
        if stale {
            // Fails harmlessly if something is connected to it after all.
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\""
                )))
                .await;
        } else if last_used.is_none() {
            let _ = admin.execute(mark(&name)).await;
        }
    }
}

async fn template(settings: &Settings) -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = PgConnection::connect_with(&maintenance_options(settings))
                .await
                .expect("PostgreSQL must be running for the tests (see README)");
            // Several test processes may race to build it; one builds, the others wait.
            admin
                .execute("SELECT pg_advisory_lock(72217001)")
                .await
                .unwrap();
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{building}\""
                    )))
                    .await
                    .unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "CREATE DATABASE \"{building}\""
                    )))
                    .await
                    .unwrap();
                let mut conn =
                    PgConnection::connect_with(&maintenance_options(settings).database(&building))
                        .await
                        .unwrap();
                currency_conversion::db::MIGRATOR
                    .run(&mut conn)
                    .await
                    .expect("migrations apply");
                conn.close().await.unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
                    )))
                    .await
                    .unwrap();
            }
            drop_stale_templates(&mut admin, &name).await;
            admin
                .execute("SELECT pg_advisory_unlock(72217001)")
                .await
                .unwrap();
            admin.close().await.ok();
            name
        })
        .await
        .clone()
}

/// Creates a fresh database from the template and returns its URL and name.
pub async fn fresh_database(settings: &Settings) -> (String, String) {
    let template = template(settings).await;
    let name = format!("ccs_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&maintenance_options(settings))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        )))
        .await
        .unwrap();
    admin.close().await.ok();
    let url = format!(
        "{}/{}",
        settings
            .database
            .url
            .expose_secret()
            .rsplit_once('/')
            .unwrap()
            .0,
        name
    );
    (url, name)
}

/// Creates an empty database (no migrations), for tests of a migration on an older schema, and
/// returns its URL and name.
pub async fn fresh_empty_database() -> (String, String) {
    let settings = super::base_settings();
    let name = format!("ccs_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&maintenance_options(&settings))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap();
    admin.close().await.ok();
    let url = format!(
        "{}/{}",
        settings
            .database
            .url
            .expose_secret()
            .rsplit_once('/')
            .unwrap()
            .0,
        name
    );
    (url, name)
}

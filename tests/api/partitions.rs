//! The monthly partitions of `conversions`: the migration that converts a populated table, the
//! `maintain_partitions` job that creates months ahead (and rescues rows that landed in the
//! default partition), and detaching old months only when the setting asks for it. What
//! PostgreSQL itself records (`pg_inherits`, `tableoid`) decides, not our own bookkeeping.

use chrono::{Datelike, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};

use crate::helpers::{
    EUR_RATES, TEST_PASSWORD, TestApp, TestUser, fresh_empty_database, spawn_app_with_rates,
};

const PARTITIONING: &str = "20261207300000";

/// The partitions of `conversions` as `pg_inherits` lists them, by name.
async fn partitions(db: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'conversions'::regclass ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// The name of the partition of the UTC month `months` months after now's.
fn month_name(now: chrono::DateTime<Utc>, months: u32) -> String {
    let first = now
        .date_naive()
        .with_day(1)
        .unwrap()
        .checked_add_months(chrono::Months::new(months))
        .unwrap();
    format!("conversions_{}", first.format("%Y_%m"))
}

/// Rows whose partition is not the one of their month (the default partition counts as wrong).
async fn misplaced_rows(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM conversions
         WHERE tableoid::regclass::text
               <> 'conversions_' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY_MM')",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// 500 conversions nine hours apart from July 2026 on (seven months; in every status), one on
/// each side of a month boundary and a batch of three, as the old table held them.
const POPULATE: &str = r#"
INSERT INTO currencies (code, name, minor_units, numeric_code, is_iso)
VALUES ('EUR', 'Euro', 2, 978, true), ('USD', 'US Dollar', 2, 840, true)
ON CONFLICT DO NOTHING;
INSERT INTO users (id, email, password_hash, role, display_name)
VALUES ('00000000-0000-4000-8000-0000000000aa', 'old-partner@example.com', 'x', 'partner', 'Old');
INSERT INTO conversion_batches (id, partner_id, item_count, created_at)
VALUES ('00000000-0000-4000-8000-0000000000bb', '00000000-0000-4000-8000-0000000000aa', 3,
        '2026-09-15T10:00:00Z');
INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, from_minor_units,
    to_minor_units, rate, result, rate_as_of, rate_provider, status, created_at, finalizes_at,
    finalized_at, cancelled_at, batch_id, batch_position)
SELECT gen_random_uuid(), uuid '00000000-0000-4000-8000-0000000000aa', 'EUR', 'USD', n, 2, 2,
       1.1, n * 1.1, at, 'frankfurter',
       (ARRAY['temporary', 'permanent', 'cancelled'])[n % 3 + 1], at, at + interval '48 hours',
       CASE WHEN n % 3 = 1 THEN at + interval '48 hours' END,
       CASE WHEN n % 3 = 2 THEN at + interval '1 hour' END, NULL::uuid, NULL::integer
FROM generate_series(1, 500) AS n,
     LATERAL (SELECT timestamptz '2026-07-01T00:00:00Z' + n * interval '9 hours' AS at) AS t
UNION ALL
SELECT gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', 'EUR', 'USD', 7, 2, 2, 1.1, 7.7,
       at, 'frankfurter', 'temporary', at, at + interval '48 hours', NULL, NULL, NULL, NULL
FROM unnest(ARRAY[timestamptz '2026-07-31T23:59:59.999999Z',
                  timestamptz '2026-08-01T00:00:00Z']) AS at
UNION ALL
SELECT gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', 'EUR', 'USD', 3, 2, 2, 1.1, 3.3,
       timestamptz '2026-09-15T10:00:00Z', 'frankfurter', 'temporary',
       timestamptz '2026-09-15T10:00:00Z', timestamptz '2026-09-17T10:00:00Z', NULL, NULL,
       '00000000-0000-4000-8000-0000000000bb', p
FROM generate_series(0, 2) AS p;
"#;

/// Every row of `conversions` and of its daily totals, as one fingerprint each, and the count.
async fn fingerprint(conn: &mut PgConnection) -> (i64, String, String) {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM conversions),
                (SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM conversions c),
                (SELECT md5(string_agg(t::text, ',' ORDER BY t::text))
                 FROM conversion_daily_totals t)",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn the_migration_partitions_a_populated_table_without_losing_or_duplicating_a_row() {
    let (url, _name) = fresh_empty_database().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut files: Vec<_> = std::fs::read_dir("migrations")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.file_name().unwrap().to_str().unwrap() < PARTITIONING)
    {
        let sql = std::fs::read_to_string(file).unwrap();
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
            .await
            .unwrap();
    }
    conn.execute(POPULATE).await.unwrap();
    let before = fingerprint(&mut conn).await;
    assert_eq!(before.0, 505);

    let mut tx = conn.begin().await.unwrap();
    tx.execute(include_str!(
        "../../migrations/20261207300000_conversions_partitioned_by_month.sql"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        fingerprint(&mut conn).await,
        before,
        "same rows, same totals"
    );
    let pool = PgPool::connect(&url).await.unwrap();
    let listed = partitions(&pool).await;
    let now = Utc::now();
    for month in [
        "2026_07", "2026_08", "2026_09", "2026_10", "2026_11", "2026_12", "2027_01",
    ]
    .into_iter()
    .map(|m| format!("conversions_{m}"))
    .chain((0..=2).map(|ahead| month_name(now, ahead)))
    .chain(["conversions_default".to_owned()])
    {
        assert!(listed.contains(&month), "{month} missing from {listed:?}");
    }
    assert_eq!(misplaced_rows(&pool).await, 0, "each row in its month");
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'conversions'::regclass AND conname = 'conversions_pkey'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(key, "PRIMARY KEY (id, created_at)");
    // A batch position is still taken once.
    let again =
        sqlx::query("INSERT INTO conversions SELECT * FROM conversions WHERE batch_position = 0")
            .execute(&pool)
            .await;
    assert!(again.is_err(), "a duplicated batch position is refused");
    // The daily totals still follow new rows.
    sqlx::query(
        "INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount,
             from_minor_units, to_minor_units, rate, result, rate_as_of, rate_provider, status,
             created_at, finalizes_at)
         VALUES (gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', 'EUR', 'USD', 2, 2, 2,
                 1.1, 2.2, now(), 'frankfurter', 'temporary', '2026-08-10T00:00:00Z',
                 '2026-08-12T00:00:00Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let counted: i64 = sqlx::query_scalar(
        "SELECT sum(count)::bigint FROM conversion_daily_totals WHERE day = '2026-08-10'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversions
         WHERE created_at >= '2026-08-10' AND created_at < '2026-08-11' AND status <> 'cancelled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counted, stored);
    pool.close().await;
}

async fn partner_converts(app: &TestApp) -> (TestUser, String) {
    let partner = app.partner().await;
    let res = app.convert(&partner.token, "EUR", "USD", "10.00").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    (partner, id)
}

async fn run_maintain_partitions(app: &TestApp) {
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/tasks/maintain_partitions/run",
            &json!({}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_pending_jobs().await;
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_runs WHERE task_name = 'maintain_partitions' AND state <> 'succeeded'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(failed, 0);
}

#[tokio::test]
async fn maintain_partitions_creates_months_ahead_and_moves_rows_out_of_the_default() {
    let app = spawn_app_with_rates(|_| {}).await;
    let start = app.clock.now();
    let listed = partitions(&app.db).await;
    for ahead in 0..=2 {
        assert!(listed.contains(&month_name(start, ahead)), "{listed:?}");
    }

    // Five months on, nothing has created that month yet: the conversion lands in the default
    // partition rather than failing.
    app.clock.advance(TimeDelta::days(5 * 31));
    app.store_rates(EUR_RATES).await;
    let later = app.clock.now();
    let (partner, id) = partner_converts(&app).await;
    let token = partner.token;
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM conversions WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(partition, "conversions_default");

    run_maintain_partitions(&app).await;
    let listed = partitions(&app.db).await;
    for ahead in 0..=2 {
        assert!(listed.contains(&month_name(later, ahead)), "{listed:?}");
    }
    assert_eq!(misplaced_rows(&app.db).await, 0, "moved into its month");
    assert_eq!(app.stored_conversions().await, 1, "moved, not copied");
    let res = app.get_conversion(&token, &Value::from(id.clone())).await;
    assert_eq!(res.status(), 200);
    let summary: Value = app
        .get_with_token("/api/v1/conversions/summary?group_by=currency_pair", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["data"][0]["count"], 1, "{summary}");
}

#[tokio::test]
async fn old_partitions_are_detached_for_archiving_only_when_the_setting_says_so() {
    for months in [0, 2] {
        let app =
            spawn_app_with_rates(|s| s.conversions.detach_partitions_after_months = months).await;
        let (partner, id) = partner_converts(&app).await;
        let month = month_name(app.clock.now(), 0);
        app.clock.advance(TimeDelta::days(6 * 31));
        run_maintain_partitions(&app).await;
        let token = app.login(&partner.email, TEST_PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let listed = partitions(&app.db).await;
        let res = app.get_conversion(&token, &Value::from(id.clone())).await;
        if months == 0 {
            assert!(listed.contains(&month), "kept by default: {listed:?}");
            assert_eq!(res.status(), 200);
        } else {
            assert!(!listed.contains(&month), "detached: {listed:?}");
            // Detached, not dropped: the month is a table of its own, row and all.
            let kept: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {month} WHERE id = '{id}'"
            )))
            .fetch_one(&app.db)
            .await
            .unwrap();
            assert_eq!(kept, 1);
            assert_eq!(res.status(), 404, "archived out of the live table");
        }
    }
}

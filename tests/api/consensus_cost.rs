//! A measurement, not a check (ignored; run it by name, figures in docs/benchmarks.md, "Consensus
//! of several sources: storage and fetch cost"): one simulated day of fetch cycles over 169
//! currencies against EUR, with one source and with five, through local Open Exchange Rates
//! stand-ins and the real client. Prints the storage each table gained, the time of a cycle and
//! the SQL statements it sent (counted in PostgreSQL's own log, `log_statement = all` set on the
//! test database only).
//!
//! Assumption of change frequency: every source publishes a new value of every currency once an
//! hour (each currency moves by up to ±0.5 % an hour, each honest source a few basis points from
//! the others, six significant digits as providers send), and the service fetches every 15
//! minutes (`tasks.schedule.fetch_rates`): 96 cycles a day, 24 of them seeing new values.

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta};
use currency_conversion::rates;
use currency_conversion::settings::RateSource;

use crate::helpers::spawn_app_with;
use crate::rates::FakeProvider;

/// A deterministic stream of pseudo-random numbers in [0, 1).
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Honest,
    Scaled,
    Inverted,
}

fn oxr(timestamp: i64, rates: &[(String, f64)]) -> String {
    let rates: Vec<String> = rates
        .iter()
        .map(|(c, r)| format!("\"{c}\":{}", format!("{r:.6e}").parse::<f64>().unwrap()))
        .collect();
    format!(
        "{{\"disclaimer\":\"stand-in\",\"license\":\"stand-in\",\"timestamp\":{timestamp},\
         \"base\":\"USD\",\"rates\":{{{}}}}}",
        rates.join(",")
    )
}

const TABLES: [&str; 4] = [
    "rate_consensus_observations",
    "rate_quotes",
    "rate_snapshots",
    "rate_source_fetches",
];

/// The lines PostgreSQL logged so far for `database` that are one statement each.
fn statements_logged(database: &str) -> usize {
    let log =
        std::fs::read_to_string("/var/log/postgresql/postgresql-15-main.log").unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(&format!("@{database} LOG:")))
        .filter(|l| l.contains(" statement: ") || l.contains(" execute "))
        .count()
}

/// One day of cycles over `kinds` as `rates.sources`, or, with `legacy`, the one stand-in as
/// `rates.provider` (no consensus: no observations, no source records).
async fn one_day(label: &str, kinds: &[Kind], legacy: bool) {
    let stand_ins: Vec<FakeProvider> = kinds.iter().map(|_| FakeProvider::start()).collect();
    let legacy_url = stand_ins[0].url.clone();
    let sources: Vec<RateSource> = stand_ins
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!("s{}=openexchangerates@{}", i + 1, p.url)
                .parse()
                .unwrap()
        })
        .collect();
    let app = spawn_app_with(move |st| {
        for s in &sources {
            st.rates
                .source_keys
                .0
                .insert(s.name.clone(), "stand-in-key".to_owned().into());
        }
        if legacy {
            st.rates.provider =
                currency_conversion::rates::provider::ProviderKind::OpenExchangeRates;
            st.rates.provider_url = Some(legacy_url.parse().unwrap());
            st.rates.api_key = Some("stand-in-key".to_owned().into());
        } else {
            st.rates.sources = sources;
        }
        st.rates.base = "EUR".parse().unwrap();
        st.rates.max_attempts = 1;
    })
    .await;
    let currencies = include_str!("../../benches/rates/currencies.sql");
    sqlx::raw_sql(sqlx::AssertSqlSafe(currencies.to_owned()))
        .execute(&app.db)
        .await
        .unwrap();
    let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM currencies WHERE code <> 'EUR'")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let mut cases = Cases(42);
    let mut levels: Vec<f64> = codes
        .iter()
        .map(|_| 10f64.powf(-0.6 + 5.2 * cases.next()))
        .collect();
    // Each honest source's own small difference per currency, a few basis points.
    let offsets: Vec<Vec<f64>> = kinds
        .iter()
        .map(|_| codes.iter().map(|_| (cases.next() - 0.5) * 6e-4).collect())
        .collect();
    let publish = |levels: &[f64], timestamp: i64| {
        for ((stand_in, kind), offsets) in stand_ins.iter().zip(kinds).zip(&offsets) {
            let rates: Vec<(String, f64)> = codes
                .iter()
                .zip(levels)
                .zip(offsets)
                .map(|((c, l), o)| {
                    let honest = l * (1.0 + o);
                    let value = match kind {
                        Kind::Honest => honest,
                        Kind::Scaled => honest * 1.1,
                        Kind::Inverted => 1.0 / honest,
                    };
                    (c.clone(), value)
                })
                .collect();
            // Open Exchange Rates quotes against USD: the same values, re-based.
            let usd = rates
                .iter()
                .find(|(c, _)| c == "USD")
                .map_or(1.0, |(_, r)| *r);
            let mut on_usd: Vec<(String, f64)> = rates
                .into_iter()
                .filter(|(c, _)| c != "USD")
                .map(|(c, r)| (c, r / usd))
                .collect();
            on_usd.push(("EUR".to_owned(), 1.0 / usd));
            stand_in.answer(200, oxr(timestamp, &on_usd));
        }
    };
    let hour = |app: &crate::helpers::TestApp| {
        app.clock
            .now()
            .duration_trunc(TimeDelta::hours(1))
            .unwrap()
            .timestamp()
    };
    publish(&levels, hour(&app));
    // The first fetch stores every currency; the day is measured after it.
    rates::fetch_and_store(&app.rates).await.unwrap();

    let database = app.db.connect_options().get_database().unwrap().to_owned();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" SET log_statement = 'all'"
    )))
    .execute(&app.db)
    .await
    .unwrap();
    // New connections pick the setting up: a handle on a pool of its own.
    let pool = sqlx::PgPool::connect_with((*app.db.connect_options()).clone())
        .await
        .unwrap();
    let mut measured = app.rates.clone();
    measured.db = pool;
    let size = |db: sqlx::PgPool| async move {
        let mut sizes = Vec::new();
        for t in TABLES {
            let bytes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT pg_total_relation_size('{t}')"
            )))
            .fetch_one(&db)
            .await
            .unwrap();
            let rows: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
                    .fetch_one(&db)
                    .await
                    .unwrap();
            sizes.push((bytes, rows));
        }
        sizes
    };
    let before = size(app.db.clone()).await;
    let mut times = (Vec::new(), Vec::new());
    let mut statements = (Vec::new(), Vec::new());
    let mut published = hour(&app);
    for _ in 0..96 {
        app.clock.advance(TimeDelta::minutes(15));
        let new_hour = hour(&app) != published;
        if new_hour {
            published = hour(&app);
            for level in levels.iter_mut() {
                *level *= 1.0 + (cases.next() - 0.5) * 0.01;
            }
            publish(&levels, hour(&app));
        }
        let logged = statements_logged(&database);
        let started = Instant::now();
        rates::fetch_and_store(&measured).await.unwrap();
        let took = started.elapsed();
        // The log is written asynchronously by the server: wait for it to settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = statements_logged(&database) - logged;
        // Autovacuum's part, done at once: the space of row versions a cycle left behind (each
        // fetch confirms what it saw again by moving `last_seen_at`) is reused, as it is in a
        // running database, instead of counting as growth.
        for t in TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {t}")))
                .execute(&app.db)
                .await
                .unwrap();
        }
        if new_hour {
            times.0.push(took);
            statements.0.push(sent);
        } else {
            times.1.push(took);
            statements.1.push(sent);
        }
    }
    let after = size(app.db.clone()).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" RESET log_statement"
    )))
    .execute(&app.db)
    .await
    .unwrap();
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let max_min = |v: &[usize]| (v.iter().min().copied(), v.iter().max().copied());
    println!(
        "== {label}: {} sources × {} currencies, 96 cycles",
        kinds.len(),
        codes.len()
    );
    for (t, ((b0, r0), (b1, r1))) in TABLES.iter().zip(before.iter().zip(&after)) {
        println!(
            "  {t}: +{} bytes/day (+{} rows); {} bytes, {} rows in all",
            b1 - b0,
            r1 - r0,
            b1,
            r1
        );
    }
    println!(
        "  cycle with new values: median {:?} over {}; statements {:?}",
        median(&mut times.0),
        times.0.len(),
        max_min(&statements.0)
    );
    println!(
        "  cycle without: median {:?} over {}; statements {:?}",
        median(&mut times.1),
        times.1.len(),
        max_min(&statements.1)
    );
}

#[tokio::test]
#[ignore = "a measurement (docs/benchmarks.md): one simulated day of fetch cycles, 1 and 5 sources"]
async fn consensus_storage_and_fetch_cost_for_one_day() {
    one_day(
        "one provider, no consensus (rates.provider)",
        &[Kind::Honest],
        true,
    )
    .await;
    one_day("one source", &[Kind::Honest], false).await;
    one_day("five honest sources", &[Kind::Honest; 5], false).await;
    one_day(
        "three honest, one scaled, one inverted",
        &[
            Kind::Honest,
            Kind::Honest,
            Kind::Honest,
            Kind::Scaled,
            Kind::Inverted,
        ],
        false,
    )
    .await;
}

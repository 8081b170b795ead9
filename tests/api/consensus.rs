//! Consensus of several sources end to end: five local servers stand in for Frankfurter (three
//! honest, one scaled ×1.10, one inverted; one honest one omits a currency), the real client
//! asks each through `fetch_and_store`, and what is stored and served is checked.

use chrono::{Days, NaiveDate, TimeDelta};
use currency_conversion::currencies::CurrencyCode;
use currency_conversion::currencies::service as currencies;
use currency_conversion::rates;
use currency_conversion::settings::RateSource;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::rates::{FakeProvider, frankfurter};

pub(crate) struct Sources {
    pub honest: [FakeProvider; 3],
    pub scaled: FakeProvider,
    pub inverted: FakeProvider,
}

/// EUR-pivot rates as each source publishes them on `date`. `honest[2]` omits CHF, `scaled`
/// omits GBP.
pub(crate) fn publish(s: &Sources, date: NaiveDate, usd: [&str; 3]) {
    let gbp = ["0.84", "0.8401", "0.8399"];
    for (i, source) in s.honest.iter().enumerate() {
        let mut rates = vec![("USD", usd[i]), ("GBP", gbp[i])];
        if i < 2 {
            rates.push(("CHF", "0.93"));
        }
        source.answer(200, frankfurter(date, &rates));
    }
    // Everything 10 % too high; no GBP.
    s.scaled
        .answer(200, frankfurter(date, &[("USD", "1.21"), ("CHF", "1.023")]));
    // EUR per unit instead of units per EUR.
    s.inverted.answer(
        200,
        frankfurter(date, &[("USD", "0.909"), ("GBP", "1.19"), ("CHF", "1.075")]),
    );
}

pub(crate) async fn five_sources() -> (TestApp, Sources, NaiveDate) {
    five_sources_with("", |_| {}).await
}

/// Five sources named `honest1{suffix}`…, `scaled{suffix}`, `inverted{suffix}` (a suffix keeps
/// a test's log lines its own), settings adjusted by `customise` after the defaults here.
pub(crate) async fn five_sources_with(
    suffix: &str,
    customise: impl FnOnce(&mut currency_conversion::settings::Settings),
) -> (TestApp, Sources, NaiveDate) {
    let s = Sources {
        honest: [
            FakeProvider::start(),
            FakeProvider::start(),
            FakeProvider::start(),
        ],
        scaled: FakeProvider::start(),
        inverted: FakeProvider::start(),
    };
    let mut list = Vec::new();
    for (i, p) in s.honest.iter().enumerate() {
        list.push(format!("honest{}{suffix}=frankfurter@{}", i + 1, p.url));
    }
    list.push(format!("scaled{suffix}=frankfurter@{}", s.scaled.url));
    list.push(format!("inverted{suffix}=frankfurter@{}", s.inverted.url));
    let sources: Vec<RateSource> = list.iter().map(|x| x.parse().unwrap()).collect();
    let app = spawn_app_with(move |st| {
        st.rates.sources = sources;
        st.rates.base = "EUR".parse().unwrap();
        st.rates.max_attempts = 1;
        st.rates.backoff_base_ms = 1;
        st.rates.request_timeout_ms = 2000;
        st.rates.max_age_secs = 2 * 86400;
        st.rates.breaker_threshold = 0;
        customise(st);
    })
    .await;
    let now = app.clock.now();
    currencies::seed_defaults(&app.state.db, now).await.unwrap();
    let yesterday = now.date_naive().checked_sub_days(Days::new(1)).unwrap();
    (app, s, yesterday)
}

async fn observations(app: &TestApp, quote: &str) -> Vec<(Option<String>, Vec<String>, String)> {
    sqlx::query_as(
        "SELECT rate::text, used, excluded::text FROM rate_consensus_observations
         WHERE quote = $1 ORDER BY observed_at, id",
    )
    .bind(quote)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_lying_sources_are_excluded_and_the_honest_median_is_served() {
    let (app, s, day) = five_sources().await;
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let token = app.partner().await.token;

    let report = rates::fetch_and_store(&app.rates).await.unwrap();
    assert_eq!(report.provider, "consensus");
    assert!(report.failures.is_empty(), "{report:?}");

    let res = app
        .get_with_token("/api/v1/rates/latest?symbols=USD,GBP", &token)
        .await;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["provider"], "consensus");
    assert_eq!(body["rates"]["USD"], "1.1");
    // Three honest values and an inverted one (the scaled source omits GBP).
    assert_eq!(body["rates"]["GBP"], "0.84");
    // CHF: two honest values (the third omits it) against two lies. The median falls between
    // them, all four are more than 100 bps from it: no majority agrees, so no rate.
    let res = app
        .get_with_token("/api/v1/rates/latest?symbols=CHF", &token)
        .await;
    assert_eq!(res.status(), 404);

    let usd = observations(&app, "USD").await;
    assert_eq!(usd.len(), 1);
    assert_eq!(usd[0].0.as_deref(), Some("1.1"));
    assert_eq!(usd[0].1, ["honest1", "honest2", "honest3"]);
    let excluded: serde_json::Value = serde_json::from_str(&usd[0].2).unwrap();
    assert_eq!(excluded[0]["source"], "inverted");
    assert_eq!(excluded[0]["rate"], "0.909");
    assert_eq!(
        excluded[0]["reason"],
        "1736.36 bps from the median 1.1, beyond max_deviation_bps 100"
    );
    assert_eq!(excluded[1]["source"], "scaled");
    assert_eq!(excluded[1]["rate"], "1.21");
    // The same provenance, read over HTTP.
    let body: serde_json::Value = app
        .get_with_token("/api/v1/rates/latest?symbols=USD&expand=sources", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["sources"]["USD"]["used"],
        serde_json::json!(["honest1", "honest2", "honest3"])
    );
    assert_eq!(body["sources"]["USD"]["excluded"][1]["source"], "scaled");
    assert_eq!(body["sources"]["USD"]["excluded"][1]["rate"], "1.21");
    let plain: serde_json::Value = app
        .get_with_token("/api/v1/rates/latest?symbols=USD", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(plain.get("sources").is_none(), "{plain}");
    let bad = app
        .get_with_token("/api/v1/rates/latest?expand=providers", &token)
        .await;
    assert_problem(bad, 422, "/problems/validation-failed").await;

    // Nothing is priced on CHF, whichever way it is asked: 503 until the next fetch.
    for res in [
        app.get_with_token("/api/v1/convert?from=EUR&to=CHF&amount=10", &token)
            .await,
        app.convert(&token, "CHF", "USD", "10").await,
        app.quote(&token, "USD", "CHF", Some("10"), "hour").await,
        // The whole batch: it is retried after Retry-After, as one conversion would be.
        app.convert_batch(
            &token,
            serde_json::json!([
                {"from": "EUR", "to": "USD", "amount": "10"},
                {"from": "EUR", "to": "CHF", "amount": "10"}
            ]),
            None,
        )
        .await,
    ] {
        let retry_after: u64 = match res.headers().get("retry-after") {
            Some(v) => v.to_str().unwrap().parse().unwrap(),
            None => panic!("{} {}", res.status(), res.text().await.unwrap()),
        };
        assert!((1..=900).contains(&retry_after), "{retry_after}");
        let problem = assert_problem(res, 503, "/problems/rate-unavailable").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("CHF"),
            "{problem}"
        );
    }
    assert_eq!(app.stored_conversions().await, 0);
    // USD is priced, and says where its rate came from.
    let res = app
        .get_with_token("/api/v1/convert?from=EUR&to=USD&amount=10", &token)
        .await;
    assert_eq!(res.status(), 200);

    let gbp = observations(&app, "GBP").await;
    assert_eq!(gbp[0].1, ["honest1", "honest2", "honest3"]);
    let chf = observations(&app, "CHF").await;
    assert_eq!(chf[0].0, None);
    assert!(chf[0].1.is_empty());
    let excluded: serde_json::Value = serde_json::from_str(&chf[0].2).unwrap();
    assert_eq!(excluded.as_array().unwrap().len(), 4);

    // The same answers again: nothing new is stored, provenance included.
    let rows = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT count(*) FROM rate_consensus_observations)
                      + (SELECT count(*) FROM rate_quotes)",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let before = rows(&app).await;
    rates::fetch_and_store(&app.rates).await.unwrap();
    assert_eq!(rows(&app).await, before);
}

#[tokio::test]
async fn below_quorum_a_currency_keeps_its_last_consensus_until_it_is_too_old() {
    let (app, s, day) = five_sources().await;
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let token = app.partner().await.token;
    rates::fetch_and_store(&app.rates).await.unwrap();

    // Two honest sources go down and the third moves: one honest value, two lies. No new
    // consensus from a minority: USD stays at the last agreed rate.
    s.honest[1].answer(500, "{}".into());
    s.honest[2].answer(500, "{}".into());
    s.honest[0].answer(
        200,
        frankfurter(day, &[("USD", "1.15"), ("GBP", "0.84"), ("CHF", "0.93")]),
    );
    let report = rates::fetch_and_store(&app.rates).await.unwrap();
    assert_eq!(report.failures.len(), 2, "{report:?}");
    let body: serde_json::Value = app
        .get_with_token("/api/v1/rates/latest?symbols=USD", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["rates"]["USD"], "1.1");
    // Shown, flagged; not priced.
    assert_eq!(body["degraded"], serde_json::json!(["USD"]), "{body}");
    let res = app.convert(&token, "EUR", "USD", "10").await;
    assert_problem(res, 503, "/problems/rate-unavailable").await;
    let usd = observations(&app, "USD").await;
    assert_eq!(usd.len(), 2);
    assert_eq!(usd[1].0, None, "below quorum: no consensus recorded");
    assert_eq!(usd[1].1, ["honest1"]);

    // Past rates.max_age_secs since the last agreement, USD is no longer served.
    app.clock.advance(TimeDelta::seconds(2 * 86400 + 1));
    rates::fetch_and_store(&app.rates).await.unwrap();
    let res = app
        .get_with_token("/api/v1/rates/latest?symbols=USD", &token)
        .await;
    assert_ne!(res.status(), 200);
}

/// The three honest sources' names: what every price made while the other two lie records.
fn honest_names() -> serde_json::Value {
    serde_json::json!(["honest1", "honest2", "honest3"])
}

#[tokio::test]
async fn prices_made_while_two_sources_lie_name_only_the_honest_sources() {
    let (app, s, day) = five_sources().await;
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let token = app.partner().await.token;
    rates::fetch_and_store(&app.rates).await.unwrap();

    // GET /convert, on a pivot pair and on a cross pair (both sides agreed by the same three).
    for path in [
        "/api/v1/convert?from=EUR&to=USD&amount=10",
        "/api/v1/convert?from=USD&to=GBP&amount=10",
    ] {
        let body: serde_json::Value = app.get_with_token(path, &token).await.json().await.unwrap();
        assert_eq!(body["rate_sources"], honest_names(), "{path}: {body}");
        assert_eq!(body["rate_details"]["sources"], honest_names(), "{body}");
    }

    // A conversion: in its answer, read back alone, in the history list and in the CSV export.
    let res = app.convert(&token, "EUR", "USD", "10").await;
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(created["rate_provider"], "consensus");
    assert_eq!(created["rate_sources"], honest_names(), "{created}");
    assert_eq!(created["rate_details"]["sources"], honest_names());
    let read: serde_json::Value = app
        .get_conversion(&token, &created["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["rate_sources"], honest_names(), "{read}");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT rate_sources FROM conversions WHERE id = $1::text::uuid")
            .bind(created["id"].as_str().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, ["honest1", "honest2", "honest3"]);
    let list: serde_json::Value = app.history(&token, "").await.json().await.unwrap();
    assert_eq!(list["data"][0]["rate_sources"], honest_names(), "{list}");
    let csv = app
        .history(&token, "format=csv")
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "rate_sources").unwrap();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[column], "honest1 honest2 honest3", "{csv}");

    // Each item of a batch.
    let res = app
        .convert_batch(
            &token,
            serde_json::json!([
                {"from": "EUR", "to": "USD", "amount": "10"},
                {"from": "GBP", "to": "USD", "amount": "20"}
            ]),
            None,
        )
        .await;
    assert_eq!(res.status(), 201);
    let batch: serde_json::Value = res.json().await.unwrap();
    for item in batch["conversions"].as_array().unwrap() {
        assert_eq!(item["rate_sources"], honest_names(), "{item}");
    }

    // A quote.
    let quote = app.quoted(&token, "EUR", "GBP", Some("10"), "hour").await;
    assert_eq!(quote["rate_sources"], honest_names(), "{quote}");
    assert_eq!(quote["rate_details"]["sources"], honest_names());
}

#[tokio::test]
async fn a_conversion_on_a_quote_keeps_the_sources_the_quote_was_priced_on() {
    let (app, s, day) = five_sources().await;
    publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    let token = app.partner().await.token;
    rates::fetch_and_store(&app.rates).await.unwrap();
    let quote = app.quoted(&token, "EUR", "USD", Some("10"), "hour").await;
    assert_eq!(quote["rate_sources"], honest_names());

    // The third honest source goes down: the consensus is now the first two's.
    s.honest[2].answer(500, "{}".into());
    s.honest[0].answer(
        200,
        frankfurter(day, &[("USD", "1.1001"), ("GBP", "0.84"), ("CHF", "0.93")]),
    );
    rates::fetch_and_store(&app.rates).await.unwrap();
    let now_priced = app.convert(&token, "EUR", "USD", "10").await;
    assert_eq!(now_priced.status(), 201);
    let now_priced: serde_json::Value = now_priced.json().await.unwrap();
    assert_eq!(
        now_priced["rate_sources"],
        serde_json::json!(["honest1", "honest2"]),
        "{now_priced}"
    );

    let res = app
        .convert_on_quote(&token, "EUR", "USD", "10", &quote["id"])
        .await;
    assert_eq!(res.status(), 201);
    let on_quote: serde_json::Value = res.json().await.unwrap();
    assert_eq!(on_quote["quote_id"], quote["id"]);
    assert_eq!(on_quote["rate"], quote["rate"]);
    assert_eq!(on_quote["rate_sources"], honest_names(), "{on_quote}");
    let read: serde_json::Value = app
        .get_conversion(&token, &on_quote["id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["rate_details"]["sources"], honest_names(), "{read}");
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan, depth first.
fn plan_nodes(plan: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    out.push(plan.clone());
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            plan_nodes(child, out);
        }
    }
}

#[tokio::test]
async fn the_consensus_in_force_is_read_by_index_probes_per_currency_not_by_scanning_history() {
    let app = crate::helpers::spawn_app().await;
    app.seed_currencies().await;
    // A year of hourly changes for every currency against EUR (~40 × 8760 rows); every tenth
    // change below the quorum.
    sqlx::query(
        "INSERT INTO rate_consensus_observations
             (base, quote, observed_at, last_seen_at, rate, used, excluded)
         SELECT 'EUR', c.code, t, t + interval '59 minutes',
                CASE WHEN n % 10 = 0 THEN NULL ELSE 1 + n / 100000.0 END,
                CASE WHEN n % 10 = 0 THEN '{a}'::text[] ELSE '{a,b,c}'::text[] END, '[]'
         FROM currencies c,
              generate_series(1, 8760) AS n,
              LATERAL (SELECT timestamptz '2026-01-01' + n * interval '1 hour') AS at(t)
         WHERE c.code <> 'EUR'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE rate_consensus_observations")
        .execute(&app.db)
        .await
        .unwrap();
    let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM currencies WHERE code <> 'EUR'")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let at = instant("2026-12-01T00:30:00Z");

    // The service's own statement text, so this checks what runs.
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (FORMAT JSON) {}",
        currency_conversion::rates::store::consensus_at_sql()
    )))
    .bind("EUR")
    .bind(&codes)
    .bind(at)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut nodes = Vec::new();
    plan_nodes(&plan[0]["Plan"], &mut nodes);
    let on_table: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| n["Relation Name"] == "rate_consensus_observations")
        .collect();
    assert_eq!(on_table.len(), 2, "{plan:#}");
    for node in on_table {
        assert_eq!(node["Node Type"], "Index Scan", "{plan:#}");
        assert_eq!(
            node["Index Name"], "rate_consensus_observations_as_of_idx",
            "{plan:#}"
        );
    }
    assert!(
        nodes.iter().all(|n| n["Node Type"] != "Sort"),
        "nothing is sorted: {plan:#}"
    );

    // And it reads the right rows: the newest at the instant and its last agreement. Hour
    // 8016 (2026-12-01T00:00) agreed; hour 8010 (2026-11-30T18:00) was below the quorum.
    let eur: CurrencyCode = "EUR".parse().unwrap();
    let usd: CurrencyCode = "USD".parse().unwrap();
    let decimal = |s: &str| s.parse::<bigdecimal::BigDecimal>().unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    let read = rates::store::consensus_at(&mut conn, eur, &[usd], at)
        .await
        .unwrap();
    let row = &read[&usd];
    assert_eq!(row.observed_at, instant("2026-12-01T00:00:00Z"));
    assert_eq!(row.rate.as_ref().unwrap().value(), &decimal("1.08016"));
    assert_eq!(row.used, ["a", "b", "c"]);
    let read = rates::store::consensus_at(&mut conn, eur, &[usd], instant("2026-11-30T18:30:00Z"))
        .await
        .unwrap();
    let row = &read[&usd];
    assert_eq!(row.observed_at, instant("2026-11-30T18:00:00Z"));
    assert_eq!(row.rate, None);
    assert_eq!(row.used, ["a"]);
    let agreed = row.last_agreed.as_ref().unwrap();
    assert_eq!(agreed.rate.value(), &decimal("1.08009"));
    assert_eq!(agreed.used, ["a", "b", "c"]);
    assert_eq!(agreed.last_seen_at, instant("2026-11-30T17:59:00Z"));
}

fn instant(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

//! Rates end to end: a local HTTP server stands in for Frankfurter, the real client fetches from
//! it through `fetch_and_store`, and the API is read over HTTP.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use currency_conversion::currencies::CurrencyCode;
use currency_conversion::currencies::service::{self as currencies, AddCurrency};
use currency_conversion::rates::service::StoreOutcome;
use currency_conversion::rates::{self, import};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// A stand-in provider: answers queued responses first, then the current one.
#[derive(Clone)]
pub(crate) struct FakeProvider {
    pub(crate) url: String,
    queue: Arc<Mutex<VecDeque<(u16, String)>>>,
    current: Arc<Mutex<(u16, String)>>,
}

impl FakeProvider {
    pub(crate) fn start() -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = FakeProvider {
            url: format!("http://127.0.0.1:{port}"),
            queue: Arc::default(),
            current: Arc::new(Mutex::new((500, "{}".into()))),
        };
        let shared = fake.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move || {
                let shared = shared.clone();
                async move {
                    let next = shared.queue.lock().unwrap().pop_front();
                    let (status, body) =
                        next.unwrap_or_else(|| shared.current.lock().unwrap().clone());
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .content_type("application/json")
                        .body(body)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        fake
    }

    pub(crate) fn answer(&self, status: u16, body: String) {
        *self.current.lock().unwrap() = (status, body);
    }

    fn then(&self, status: u16, body: &str) {
        self.queue.lock().unwrap().push_back((status, body.into()));
    }
}

pub(crate) fn frankfurter(date: NaiveDate, rates: &[(&str, &str)]) -> String {
    let rates: Vec<String> = rates.iter().map(|(c, r)| format!("\"{c}\":{r}")).collect();
    format!(
        "{{\"amount\":1.0,\"base\":\"EUR\",\"date\":\"{date}\",\"rates\":{{{}}}}}",
        rates.join(",")
    )
}

const DAY1: [(&str, &str); 5] = [
    ("USD", "1.1"),
    ("GBP", "0.8"),
    ("JPY", "160.5"),
    ("KWD", "0.3845"),
    ("CHF", "0.93"),
];

const DAY2: [(&str, &str); 5] = [
    ("USD", "1.1"),
    ("GBP", "0.82"),
    ("JPY", "160.5"),
    ("KWD", "0.3845"),
    ("CHF", "0.93"),
];

struct Fixture {
    app: TestApp,
    provider: FakeProvider,
    token: String,
    day1: NaiveDate,
    day2: NaiveDate,
}

fn at_15(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(15, 0, 0).unwrap().and_utc()
}

async fn fixture() -> Fixture {
    let provider = FakeProvider::start();
    let url = provider.url.clone();
    let app = spawn_app_with(move |s| {
        s.rates.provider = currency_conversion::settings::ProviderKind::Frankfurter;
        s.rates.provider_url = Some(url.parse().unwrap());
        s.rates.fallbacks = Vec::new();
        s.rates.base = "EUR".parse().unwrap();
        s.rates.max_attempts = 3;
        s.rates.backoff_base_ms = 1;
        s.rates.request_timeout_ms = 2000;
        s.rates.max_age_secs = 5 * 86400;
        s.rates.breaker_threshold = 0;
    })
    .await;
    let now = app.clock.now();
    currencies::seed_defaults(&app.state.db, now).await.unwrap();
    currencies::add(
        &app.state.db,
        AddCurrency {
            code: "KWD".parse().unwrap(),
            name: None,
            minor_units: None,
            iso: None,
            enabled: None,
        },
        now,
    )
    .await
    .unwrap();
    let token = app.partner().await.token;
    let today = now.date_naive();
    Fixture {
        app,
        provider,
        token,
        day1: today.checked_sub_days(Days::new(2)).unwrap(),
        day2: today.checked_sub_days(Days::new(1)).unwrap(),
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.app.get_with_token(path, &self.token).await
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn quote_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM rate_quotes")
            .fetch_one(&self.app.db)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn fetch_stores_each_change_once_and_serves_cross_rates() {
    let f = fixture().await;
    f.provider.answer(200, frankfurter(f.day1, &DAY1));

    let report = rates::fetch_and_store(&f.app.rates).await.unwrap();
    assert_eq!(report.provider, "frankfurter");
    assert_eq!(report.outcome, StoreOutcome::Stored);
    assert_eq!(report.as_of, at_15(f.day1));
    assert_eq!((report.changed, report.unchanged), (5, 0));
    assert!(
        report
            .missing
            .contains(&CurrencyCode::parse("EGP").unwrap()),
        "{report:?}"
    );
    assert_eq!(f.quote_rows().await, 5);

    // The same publication again stores nothing.
    let again = rates::fetch_and_store(&f.app.rates).await.unwrap();
    assert_eq!(again.outcome, StoreOutcome::SamePublication);
    assert_eq!((again.changed, again.unchanged), (0, 5));
    assert_eq!(f.quote_rows().await, 5);

    // Latest, for several bases, with exact cross rates.
    let body = f
        .json("/api/v1/rates/latest?base=USD&symbols=GBP,JPY,EUR")
        .await;
    assert_eq!(body["base"], "USD");
    assert_eq!(body["provider"], "frankfurter");
    assert_eq!(body["stale"], false);
    assert_eq!(body["rates"]["GBP"], "0.727272727272727273");
    assert_eq!(body["rates"]["JPY"], "145.909090909090909");
    assert_eq!(body["rates"]["EUR"], "0.909090909090909091");
    let body = f.json("/api/v1/rates/latest?base=gbp&symbols=CHF").await;
    assert_eq!(body["rates"]["CHF"], "1.1625");
    let body = f.json("/api/v1/rates/latest").await;
    assert_eq!(body["base"], "EUR");
    assert_eq!(body["rates"]["USD"], "1.1");
    assert!(
        body["rates"].get("EGP").is_none(),
        "unquoted currencies are left out"
    );
    assert_eq!(
        DateTime::parse_from_rfc3339(body["as_of"].as_str().unwrap()).unwrap(),
        at_15(f.day1)
    );

    // ETag and Cache-Control.
    let res = f.get("/api/v1/rates/latest?base=USD&symbols=GBP").await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let res = f
        .app
        .client
        .get(f.app.url("/api/v1/rates/latest?base=USD&symbols=GBP"))
        .bearer_auth(&f.token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // The next day: only GBP changed.
    f.provider.answer(200, frankfurter(f.day2, &DAY2));
    let report = rates::fetch_and_store(&f.app.rates).await.unwrap();
    assert_eq!((report.changed, report.unchanged), (1, 4));
    assert_eq!(f.quote_rows().await, 6);
    let body = f.json("/api/v1/rates/latest?base=USD&symbols=GBP").await;
    assert_eq!(body["rates"]["GBP"], "0.745454545454545455");
    let res = f
        .app
        .client
        .get(f.app.url("/api/v1/rates/latest?base=USD&symbols=GBP"))
        .bearer_auth(&f.token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "new rates change the ETag");

    // As of an instant, and as of a date.
    let between = (at_15(f.day1) + TimeDelta::hours(1)).to_rfc3339();
    let body = f
        .json(&format!(
            "/api/v1/rates/at?base=USD&symbols=GBP&timestamp={}",
            urlencode(&between)
        ))
        .await;
    assert_eq!(body["rates"]["GBP"], "0.727272727272727273");
    let body = f
        .json(&format!("/api/v1/rates/at?symbols=GBP&date={}", f.day2))
        .await;
    assert_eq!(body["rates"]["GBP"], "0.82");
    let before = (at_15(f.day1) - TimeDelta::seconds(1)).to_rfc3339();
    let res = f
        .get(&format!(
            "/api/v1/rates/at?timestamp={}",
            urlencode(&before)
        ))
        .await;
    assert_problem(res, 404, "/problems/no-rates").await;

    // The function the conversions module calls.
    let usd = CurrencyCode::parse("USD").unwrap();
    let eur = CurrencyCode::parse("EUR").unwrap();
    let gbp = CurrencyCode::parse("GBP").unwrap();
    let q = rates::quote(&f.app.rates, usd, gbp, None).await.unwrap();
    assert_eq!(q.rate.to_string(), "0.745454545454545455");
    assert!(q.from_quote_id.is_some() && q.to_quote_id.is_some());
    assert_ne!(q.from_quote_id, q.to_quote_id);
    let q = rates::quote(&f.app.rates, eur, gbp, None).await.unwrap();
    assert_eq!(q.from_quote_id, None);
    assert_eq!(q.rate.to_string(), "0.82");

    // Series: one daily candle per day.
    let body = f
        .json(&format!(
            "/api/v1/rates/series?base=EUR&symbols=GBP,USD&from={}&to={}&interval=day",
            f.day1, f.day2
        ))
        .await;
    let gbp_days = body["rates"]["GBP"].as_array().unwrap();
    assert_eq!(gbp_days.len(), 2, "{body}");
    assert_eq!(gbp_days[0]["close"], "0.8");
    assert_eq!(gbp_days[1]["open"], "0.82");
    assert_eq!(body["rates"]["USD"].as_array().unwrap().len(), 1);
    let body = f
        .json(&format!(
            "/api/v1/rates/series?base=USD&symbols=GBP&from={}&to={}&interval=raw",
            f.day1, f.day2
        ))
        .await;
    assert_eq!(body["rates"]["GBP"].as_array().unwrap().len(), 2);

    // Conversion quotes round once, toward zero, to the target's minor units.
    let body = f.json("/api/v1/convert?from=EUR&to=JPY&amount=1.00").await;
    assert_eq!(body["rate"], "160.5");
    assert_eq!(body["result"], "160", "160.5 → 160 (toward zero)");
    let body = f.json("/api/v1/convert?from=EUR&to=JPY&amount=3").await;
    assert_eq!(body["result"], "481", "481.5 → 481 (toward zero)");
    assert_eq!(body["amount"], "3.00");
    let body = f.json("/api/v1/convert?from=EUR&to=KWD&amount=1").await;
    assert_eq!(body["result"], "0.384", "0.3845 → 0.384 (toward zero)");
    let body = f.json("/api/v1/convert?from=JPY&to=USD&amount=1000").await;
    assert_eq!(body["rate"], "0.00685358255451713396");
    assert_eq!(body["result"], "6.85");
    // The quote names its rate's facts as a conversion does.
    assert_eq!(body["stale_rate"], false);
    assert_eq!(body["rate_provider"], "frankfurter");
    // One provider: the price's sources are that provider.
    assert_eq!(body["rate_sources"], serde_json::json!(["frankfurter"]));
    assert!(body.get("stale").is_none() && body.get("provider").is_none());
    assert!(body.get("id").is_none());

    // Staleness follows the injected clock, even for an answer served before from the same
    // rates (answers are rendered once per cached rates and staleness).
    let body = f.json("/api/v1/rates/latest?symbols=USD").await;
    assert_eq!(body["stale"], false);
    f.app.clock.advance(TimeDelta::days(10));
    // The old access token expired with the clock move.
    let token = f.app.partner().await.token;
    let res = f
        .app
        .get_with_token("/api/v1/rates/latest?symbols=USD", &token)
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["stale"], true);
    let q = rates::quote(&f.app.rates, usd, gbp, None).await.unwrap();
    assert!(q.stale);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_input_is_refused_with_a_problem() {
    let f = fixture().await;
    f.provider.answer(200, frankfurter(f.day1, &DAY1));
    rates::fetch_and_store(&f.app.rates).await.unwrap();
    currencies::update(
        &f.app.state.db,
        CurrencyCode::parse("CHF").unwrap(),
        None,
        Some(false),
        f.app.clock.now(),
    )
    .await
    .unwrap();

    let res = f.app.get("/api/v1/rates/latest").await;
    assert_eq!(res.status(), 401);

    for (path, status, problem) in [
        (
            "/api/v1/rates/latest?base=QQQ",
            422,
            "/problems/currency-not-supported",
        ),
        (
            "/api/v1/rates/latest?symbols=USD,QQQ",
            422,
            "/problems/currency-not-supported",
        ),
        (
            "/api/v1/rates/latest?base=CHF",
            422,
            "/problems/currency-disabled",
        ),
        (
            "/api/v1/rates/latest?base=US",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/latest?base=U1D",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/latest?symbols=",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/latest?symbols=USD,,GBP",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/latest?symbols=USD,usd",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/latest?symbols=EGP",
            404,
            "/problems/no-rates",
        ),
        (
            "/api/v1/rates/at?timestamp=yesterday",
            422,
            "/problems/validation-failed",
        ),
        ("/api/v1/rates/at", 422, "/problems/validation-failed"),
        (
            "/api/v1/rates/at?date=1990-01-01",
            404,
            "/problems/no-rates",
        ),
        (
            "/api/v1/rates/series?symbols=USD&from=2024-02-01&to=2024-01-01",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/series?symbols=USD&from=2020-01-01&to=2024-01-01",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/series?symbols=USD&from=2024-01-01&to=2024-03-01&interval=hour",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/series?symbols=USD&from=2024-01-01&to=2024-01-02&interval=week",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/rates/series?from=2024-01-01&to=2024-01-02",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=-1",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=0",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=abc",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=1e3",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=100000000000",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD&amount=1.001",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=JPY&to=USD&amount=1.5",
            422,
            "/problems/validation-failed",
        ),
        (
            "/api/v1/convert?from=EUR&to=QQQ&amount=1",
            422,
            "/problems/currency-not-supported",
        ),
        (
            "/api/v1/convert?from=CHF&to=USD&amount=1",
            422,
            "/problems/currency-disabled",
        ),
        (
            "/api/v1/convert?from=EUR&to=USD",
            422,
            "/problems/validation-failed",
        ),
    ] {
        let res = f.get(path).await;
        let body = assert_problem(res, status, problem).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn no_rates_before_the_first_fetch_is_a_clear_404() {
    let f = fixture().await;
    let res = f.get("/api/v1/rates/latest").await;
    assert_problem(res, 404, "/problems/no-rates").await;
    let res = f.get("/api/v1/convert?from=EUR&to=USD&amount=1").await;
    assert_problem(res, 404, "/problems/no-rates").await;
}

#[tokio::test]
async fn provider_failures_are_retried_reported_and_store_nothing_bad() {
    let f = fixture().await;
    // Garbage: nothing stored, the error says why.
    f.provider.answer(200, "<html>maintenance</html>".into());
    let err = rates::fetch_and_store(&f.app.rates).await.unwrap_err();
    assert!(format!("{err:#}").contains("frankfurter"), "{err:#}");
    f.provider
        .answer(200, "{\"amount\":1.0,\"base\":\"EUR\",\"da".into());
    assert!(rates::fetch_and_store(&f.app.rates).await.is_err());
    f.provider
        .answer(200, frankfurter(f.day1, &[("USD", "-1.1")]));
    assert!(rates::fetch_and_store(&f.app.rates).await.is_err());
    assert_eq!(f.quote_rows().await, 0);

    // 500, then success: the retry succeeds and the failure is reported.
    f.provider.then(500, "{\"message\":\"internal\"}");
    f.provider.answer(200, frankfurter(f.day2, &DAY2));
    let report = rates::fetch_and_store(&f.app.rates).await.unwrap();
    assert_eq!(report.changed, 5);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].1.contains("500"), "{report:?}");

    // An older publication than the stored one is rejected.
    f.provider.answer(200, frankfurter(f.day1, &DAY1));
    let report = rates::fetch_and_store(&f.app.rates).await.unwrap();
    assert_eq!(
        report.outcome,
        StoreOutcome::RejectedOlder {
            stored_as_of: at_15(f.day2)
        }
    );
    assert_eq!(f.quote_rows().await, 5);
}

#[tokio::test]
async fn ecb_history_imports_change_only_and_idempotently() {
    let f = fixture().await;
    // The whole ECB history, committed with the repository (public data, see data/README.md).
    let path = format!("{}/data/ecb-eurofxref-hist.csv", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&path).exists(),
        "ECB history {path} is missing"
    );
    let open = || std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let started = std::time::Instant::now();
    let report = import::import_ecb(&f.app.rates, open()).await.unwrap();
    assert_eq!(report.days, 7126);
    assert_eq!(report.snapshots_inserted, 7126);
    assert!(
        report
            .currencies_added
            .contains(&CurrencyCode::parse("CYP").unwrap()),
        "{report:?}"
    );
    let cyp = currencies::find(&f.app.state.db, CurrencyCode::parse("CYP").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(cyp.retired);
    // Change-only: far fewer rows than days × currencies.
    let cells: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(quote_count), 0)::bigint FROM rate_snapshots WHERE provider = 'ecb'",
    )
    .fetch_one(&f.app.db)
    .await
    .unwrap();
    assert!(report.quotes_inserted > 0);
    assert!(
        (report.quotes_inserted as i64) < cells,
        "{} rows for {cells} cells",
        report.quotes_inserted
    );
    eprintln!(
        "ECB import: {} quote rows for {cells} cells in {:?}",
        report.quotes_inserted,
        started.elapsed()
    );

    // Values read back through the API, as of the first and the last day of the file.
    let body = f
        .json("/api/v1/rates/at?symbols=USD,CYP&date=1999-01-04")
        .await;
    assert_eq!(body["provider"], "ecb");
    assert_eq!(body["rates"]["USD"], "1.1789");
    assert_eq!(body["rates"]["CYP"], "0.58231");
    let body = f
        .json("/api/v1/rates/at?symbols=USD,JPY&date=2026-10-30")
        .await;
    assert_eq!(body["rates"]["USD"], "1.1172");
    assert_eq!(body["rates"]["JPY"], "175.68");
    // CYP stopped being quoted: not carried forward.
    let res = f.get("/api/v1/rates/at?symbols=CYP&date=2026-10-30").await;
    assert_problem(res, 404, "/problems/no-rates").await;

    // A re-run stores nothing new.
    let again = import::import_ecb(&f.app.rates, open()).await.unwrap();
    assert_eq!(again.days, 7126);
    assert_eq!((again.snapshots_inserted, again.quotes_inserted), (0, 0));
}

#[tokio::test]
async fn polls_of_an_unchanged_publication_before_its_hour_store_one_snapshot() {
    let app = spawn_app_with(|_| {}).await;
    app.seed_currencies().await;
    // 09:00 UTC tomorrow: the ECB's day is dated, but not yet at its 15:00 UTC publication hour,
    // so each poll's `as_of` is clamped to the time of the poll.
    let now = app.clock.now();
    let morning = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    app.clock.advance(morning - now);
    for _ in 0..3 {
        app.store_rates(&[("USD", "1.1"), ("GBP", "0.85")]).await;
        app.clock.advance(chrono::Duration::minutes(15));
    }
    let snapshots: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT as_of FROM rate_snapshots WHERE provider = 'frankfurter' ORDER BY as_of",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        snapshots,
        vec![morning],
        "one snapshot, first seen at 09:00"
    );
    let last_seen: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT last_seen_at FROM rate_snapshots WHERE provider = 'frankfurter'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(last_seen, morning + chrono::Duration::minutes(30));
}

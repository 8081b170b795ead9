//! Consensus of several sources end to end: five local servers stand in for Frankfurter (three
//! honest, one scaled ×1.10, one inverted; one honest one omits a currency), the real client
//! asks each through `fetch_and_store`, and what is stored and served is checked.

use chrono::{Days, NaiveDate, TimeDelta};
use currency_conversion::currencies::service as currencies;
use currency_conversion::rates;
use currency_conversion::settings::RateSource;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::rates::{FakeProvider, frankfurter};

struct Sources {
    honest: [FakeProvider; 3],
    scaled: FakeProvider,
    inverted: FakeProvider,
}

/// EUR-pivot rates as each source publishes them on `date`. `honest[2]` omits CHF, `scaled`
/// omits GBP.
fn publish(s: &Sources, date: NaiveDate, usd: [&str; 3]) {
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

async fn five_sources() -> (TestApp, Sources, NaiveDate) {
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
        list.push(format!("honest{}=frankfurter@{}", i + 1, p.url));
    }
    list.push(format!("scaled=frankfurter@{}", s.scaled.url));
    list.push(format!("inverted=frankfurter@{}", s.inverted.url));
    let sources: Vec<RateSource> = list.iter().map(|x| x.parse().unwrap()).collect();
    let app = spawn_app_with(move |st| {
        st.rates.sources = sources;
        st.rates.base = "EUR".parse().unwrap();
        st.rates.max_attempts = 1;
        st.rates.backoff_base_ms = 1;
        st.rates.request_timeout_ms = 2000;
        st.rates.max_age_secs = 2 * 86400;
        st.rates.breaker_threshold = 0;
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

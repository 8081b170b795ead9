//! The ECB money oracle: with one `ecb` source (a local server answering the ECB's own daily XML
//! format, made from the committed ECB file `data/ecb-eurofxref-daily.csv`), every conversion
//! must equal an independent computation from that file — amount × (to per EUR) / (from per EUR),
//! exactly, rounded toward zero to the target's minor units — within one minor unit (the service
//! keeps a cross rate to 18 significant digits, which may move a result sitting on a unit's
//! edge). Every ordered pair of the file's currencies and EUR, several amounts each.

use std::collections::BTreeMap;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use currency_conversion::currencies::service as currencies;
use currency_conversion::rates;
use currency_conversion::settings::RateSource;

use crate::helpers::spawn_app_with;
use crate::rates::FakeProvider;

/// The ECB's rates of 2026-10-30 (units per EUR, as the ECB wrote them), EUR included.
fn ecb_day() -> BTreeMap<String, String> {
    let path = format!(
        "{}/data/ecb-eurofxref-daily.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').map(str::trim).collect();
    assert_eq!(values[0], "30 October 2026");
    let mut day: BTreeMap<String, String> = header
        .iter()
        .zip(&values)
        .skip(1)
        .filter(|(code, _)| !code.is_empty())
        .map(|(code, rate)| ((*code).to_owned(), (*rate).to_owned()))
        .collect();
    day.insert("EUR".into(), "1".into());
    day
}

/// The day as `eurofxref-daily.xml` publishes it.
fn ecb_xml(day: &BTreeMap<String, String>) -> String {
    let cubes: String = day
        .iter()
        .filter(|(code, _)| *code != "EUR")
        .map(|(code, rate)| format!("\t\t\t<Cube currency='{code}' rate='{rate}'/>\n"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <gesmes:Envelope xmlns:gesmes=\"http://www.gesmes.org/xml/2002-08-01\" \
         xmlns=\"http://www.ecb.int/vocabulary/2002-08-01/eurofxref\">\n\
         \t<gesmes:subject>Reference rates</gesmes:subject>\n\
         \t<gesmes:Sender>\n\t\t<gesmes:name>European Central Bank</gesmes:name>\n\t</gesmes:Sender>\n\
         \t<Cube>\n\t\t<Cube time='2026-10-30'>\n{cubes}\t\t</Cube>\n\t</Cube>\n\
         </gesmes:Envelope>\n"
    )
}

/// A deterministic stream of pseudo-random numbers (64-bit LCG).
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
}

/// One conversion to make and what the oracle says it gives.
struct Case {
    from: String,
    to: String,
    amount: BigDecimal,
    expected: BigDecimal,
    to_minor_units: i64,
}

#[tokio::test]
async fn conversions_on_a_single_ecb_source_match_the_ecb_file_within_one_minor_unit() {
    let day = ecb_day();
    let ecb = FakeProvider::start();
    ecb.answer(200, ecb_xml(&day));
    let source: RateSource = format!("ecb=ecb@{}", ecb.url).parse().unwrap();
    let app = spawn_app_with(move |st| {
        st.rates.sources = vec![source];
        st.rates.base = "EUR".parse().unwrap();
        st.rates.max_attempts = 1;
        // The file's day is weeks old; its rates are what is being checked, not their age.
        st.rates.max_age_secs = 3650 * 86400;
    })
    .await;
    currencies::seed_defaults(&app.state.db, app.clock.now())
        .await
        .unwrap();
    let report = rates::fetch_and_store(&app.rates).await.unwrap();
    assert_eq!(report.quotes, day.len() - 1, "{report:?}");
    let minor: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i16)>(
        "SELECT code, minor_units FROM currencies WHERE code = ANY($1)",
    )
    .bind(day.keys().cloned().collect::<Vec<_>>())
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .map(|(c, m)| (c, i64::from(m)))
    .collect();
    assert_eq!(minor.len(), day.len(), "every ECB currency is seeded");

    // Every ordered pair, three amounts each (up to a thousand, a million and a billion units
    // of the source's smallest unit), skipping the few whose result is below one minor unit
    // (refused, not priced).
    let mut cases = Cases(0x0ecb_0ecb);
    let mut all = Vec::new();
    for (from, from_rate) in &day {
        for (to, to_rate) in &day {
            if from == to {
                continue;
            }
            for limit in [1_000, 1_000_000, 999_999_999] {
                let units = cases.next() % limit + 1;
                let amount = BigDecimal::new(units.into(), minor[from]);
                let exact = &amount * BigDecimal::parse_bytes(to_rate.as_bytes(), 10).unwrap()
                    / BigDecimal::parse_bytes(from_rate.as_bytes(), 10).unwrap();
                let expected = exact.with_scale_round(minor[to], RoundingMode::Down);
                if expected.is_zero() {
                    continue;
                }
                all.push(Case {
                    from: from.clone(),
                    to: to.clone(),
                    amount,
                    expected,
                    to_minor_units: minor[to],
                });
            }
        }
    }
    assert!(all.len() > 2_400, "{} cases", all.len());

    let token = app.partner().await.token;
    let mut got = Vec::new();
    // Stored conversions, in batches (the same pricing pipeline as one conversion).
    for chunk in all.chunks(1000) {
        let items: Vec<serde_json::Value> = chunk
            .iter()
            .map(|c| {
                serde_json::json!({"from": c.from, "to": c.to, "amount": c.amount.to_plain_string()})
            })
            .collect();
        let res = app
            .convert_batch(&token, serde_json::Value::Array(items), None)
            .await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        for (case, conversion) in chunk.iter().zip(body["conversions"].as_array().unwrap()) {
            assert_eq!(conversion["rate_sources"], serde_json::json!(["ecb"]));
            got.push((case, conversion["result"].as_str().unwrap().to_owned()));
        }
    }
    // One conversion at a time and the indicative price, on a sample.
    for case in all.iter().step_by(all.len() / 40) {
        let res = app
            .convert(&token, &case.from, &case.to, &case.amount.to_plain_string())
            .await;
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        got.push((case, body["result"].as_str().unwrap().to_owned()));
        let body: serde_json::Value = app
            .get_with_token(
                &format!(
                    "/api/v1/convert?from={}&to={}&amount={}",
                    case.from,
                    case.to,
                    case.amount.to_plain_string()
                ),
                &token,
            )
            .await
            .json()
            .await
            .unwrap();
        got.push((case, body["result"].as_str().unwrap().to_owned()));
    }

    let mut beyond_one_unit = Vec::new();
    let mut one_unit = 0;
    for (case, result) in &got {
        let result: BigDecimal = result.parse().unwrap();
        let unit = BigDecimal::new(1.into(), case.to_minor_units);
        let difference = (&result - &case.expected).abs();
        if difference > unit {
            beyond_one_unit.push(format!(
                "{} {} → {}: {result}, the ECB file gives {}",
                case.amount, case.from, case.to, case.expected
            ));
        } else if !difference.is_zero() {
            one_unit += 1;
        }
    }
    eprintln!(
        "ECB oracle: {} prices, {} one minor unit off, {} beyond",
        got.len(),
        one_unit,
        beyond_one_unit.len()
    );
    assert!(beyond_one_unit.is_empty(), "{beyond_one_unit:#?}");
}

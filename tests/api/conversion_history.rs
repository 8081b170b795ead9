//! A partner's conversions afterwards: who may see them, the history list and its export, and
//! the summary's figures.

use serde_json::{Value, json};

use crate::conversions::{app_with_rates, fresh_token};
use crate::helpers::assert_problem;

#[tokio::test]
async fn partners_cannot_see_list_cancel_or_export_each_others_conversions() {
    let app = app_with_rates(|_| {}).await;
    let alice = app.partner().await;
    let bob = app.partner().await;
    let c: Value = app
        .convert(&alice.token, "EUR", "USD", "1.00")
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap();
    assert_problem(
        app.get_with_token(&format!("/api/v1/conversions/{id}"), &bob.token)
            .await,
        404,
        "/problems/not-found",
    )
    .await;
    let res = app
        .post_json(
            &format!("/api/v1/conversions/{id}/cancel"),
            &json!({}),
            Some(&bob.token),
        )
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    let list: Value = app
        .get_with_token("/api/v1/conversions", &bob.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["data"].as_array().unwrap().is_empty());
    let csv = app
        .get_with_token("/api/v1/conversions?format=csv", &bob.token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1, "header only: {csv}");
    let res = app
        .get_with_token(
            &format!("/api/v1/conversions?partner_id={}", alice.id),
            &bob.token,
        )
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
    // Alice sees hers; an admin sees everyone's and can filter.
    let list: Value = app
        .get_with_token("/api/v1/conversions", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let admin = app.admin().await;
    let list: Value = app
        .get_with_token(
            &format!("/api/v1/conversions?partner_id={}", alice.id),
            &admin.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], id);
    // Admins do not convert: conversions belong to partners.
    assert_eq!(
        app.convert(&admin.token, "EUR", "USD", "1.00")
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn history_filters_paginates_newest_first_and_exports_csv() {
    let app = app_with_rates(|_| {}).await;
    let partner = app.partner().await;
    for (i, to) in ["USD", "GBP", "USD", "JPY", "USD"].iter().enumerate() {
        app.clock.advance(chrono::Duration::seconds(1));
        let res = app
            .convert(&partner.token, "EUR", to, &format!("{}.00", i + 1))
            .await;
        assert_eq!(res.status(), 201);
    }
    let page1: Value = app
        .history(&partner.token, "limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1["data"][0]["amount"], "5.00");
    assert_eq!(page1["data"][1]["amount"], "4.00");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .history(&partner.token, &format!("limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["data"][0]["amount"], "3.00");
    let usd: Value = app
        .history(&partner.token, "currency=usd")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usd["data"].as_array().unwrap().len(), 3);
    let res = app
        .client
        .get(app.url("/api/v1/conversions"))
        .bearer_auth(&partner.token)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(",EUR,USD,5.00,1.1,5.50,")
    );
    for bad in [
        "status=done",
        "currency=US",
        "limit=1000",
        "cursor=xyz",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday",
    ] {
        let res = app
            .get_with_token(&format!("/api/v1/conversions?{bad}"), &partner.token)
            .await;
        assert_problem(res, 422, "/problems/validation-failed").await;
    }
    let summary: Value = app
        .get_with_token(
            "/api/v1/conversions/summary?group_by=currency_pair",
            &partner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let usd_row = summary["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["to"] == "USD")
        .unwrap();
    assert_eq!(usd_row["count"], 3);
    assert_eq!(usd_row["total_amount"], "9.00");
    assert_eq!(usd_row["total_result"], "9.90");
    let by_day: Value = app
        .get_with_token("/api/v1/conversions/summary?group_by=day", &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_day["data"][0]["count"], 5);
    assert_eq!(by_day["data"][0]["total_amount"], "15.00");
}

/// The summary adds whole days from the rollup and reads the partial days at the edges of the
/// range from the conversions themselves: every range must count exactly the conversions
/// created inside it, cancelled ones never, and finalizing must not change a figure.
/// With the test clock moved to `at` (logging in again, since moving it outdates tokens), the
/// partner of `email` converts `amount` EUR into `to`, and cancels it when `cancel`; returns the
/// conversion as the API answered its creation.
async fn convert_at(
    app: &crate::helpers::TestApp,
    email: &str,
    at: chrono::DateTime<chrono::Utc>,
    to: &str,
    amount: &str,
    cancel: bool,
) -> Value {
    app.clock.advance(at - app.clock.now());
    let token = fresh_token(app, email).await;
    let c: Value = app
        .convert(&token, "EUR", to, amount)
        .await
        .json()
        .await
        .unwrap();
    if cancel {
        let id = c["id"].as_str().unwrap();
        let res = app
            .post_json(
                &format!("/api/v1/conversions/{id}/cancel"),
                &json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    c
}

#[tokio::test]
async fn summary_counts_exactly_the_conversions_in_any_range_across_days() {
    let app = app_with_rates(|s| {
        s.conversions.stale_rates = currency_conversion::settings::StaleRatePolicy::Allow;
        s.conversions.holding_period_secs = 3600;
    })
    .await;
    let partner = app.partner().await;
    let other = app.partner().await;
    // Day 1 starts at the next UTC midnight; moving the clock by days outdates tokens, so each
    // conversion logs in again.
    let now = app.clock.now();
    let day1 = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let at = |hours: i64| day1 + chrono::Duration::hours(hours);
    let mut made = Vec::new();
    for (hour, amount, cancel) in [
        (1, "1.00", false),   // A, day 1 01:00
        (21, "2.00", false),  // B, day 1 21:00
        (27, "4.00", false),  // C, day 2 03:00
        (27, "8.00", true),   // D, day 2 03:00, cancelled
        (51, "16.00", false), // E, day 3 03:00
    ] {
        let c = convert_at(&app, &partner.email, at(hour), "USD", amount, cancel).await;
        let id = c["id"].as_str().unwrap().to_owned();
        // Another partner's conversion at the same instant never counts for this one.
        let other_token = fresh_token(&app, &other.email).await;
        assert_eq!(
            app.convert(&other_token, "EUR", "USD", "100.00")
                .await
                .status(),
            201
        );
        made.push(id);
    }
    let token = fresh_token(&app, &partner.email).await;
    let pair_totals = |token: String, query: String| {
        let app = &app;
        async move {
            let summary: Value = app
                .get_with_token(
                    &format!("/api/v1/conversions/summary?group_by=currency_pair{query}"),
                    &token,
                )
                .await
                .json()
                .await
                .unwrap();
            let data = summary["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{query}: {summary}"));
            match data.as_slice() {
                [] => (0, String::new()),
                [row] => (
                    row["count"].as_i64().unwrap(),
                    row["total_amount"].as_str().unwrap().to_owned(),
                ),
                more => panic!("one pair expected: {more:?}"),
            }
        }
    };
    let range = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "&from={}&to={}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    };
    let check = |finalized: bool, token: String| {
        let pair_totals = move |query: String| pair_totals(token.clone(), query);
        async move {
            let ctx = if finalized {
                "after finalizing"
            } else {
                "before finalizing"
            };
            assert_eq!(
                pair_totals(String::new()).await,
                (4, "23.00".into()),
                "{ctx}"
            );
            // Partial day 1, whole day 2, partial day 3: B + C.
            assert_eq!(
                pair_totals(range(at(12), at(50))).await,
                (2, "6.00".into()),
                "{ctx}"
            );
            // Exactly day 1: A + B.
            assert_eq!(
                pair_totals(range(at(0), at(24))).await,
                (2, "3.00".into()),
                "{ctx}"
            );
            // Inside one day: B.
            assert_eq!(
                pair_totals(range(at(20), at(22))).await,
                (1, "2.00".into()),
                "{ctx}"
            );
            // From midnight to a partial day: day 2 whole (C) and day 3 until 04:00 (E).
            assert_eq!(
                pair_totals(range(at(24), at(52))).await,
                (2, "20.00".into()),
                "{ctx}"
            );
            // C's and D's hour: D was cancelled, C alone counts.
            assert_eq!(
                pair_totals(range(at(27), at(28))).await,
                (1, "4.00".into()),
                "{ctx}"
            );
            // Between A and B: nothing.
            assert_eq!(
                pair_totals(range(at(5), at(20))).await,
                (0, String::new()),
                "{ctx}"
            );
        }
    };
    check(false, token.clone()).await;
    let by_day: Value = app
        .get_with_token("/api/v1/conversions/summary?group_by=day", &token)
        .await
        .json()
        .await
        .unwrap();
    let days: Vec<(String, i64, String)> = by_day["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["day"].as_str().unwrap().to_owned(),
                r["count"].as_i64().unwrap(),
                r["total_amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let day = |hours: i64| at(hours).date_naive().to_string();
    assert_eq!(
        days,
        vec![
            (day(48), 1, "16.00".into()),
            (day(24), 1, "4.00".into()),
            (day(0), 2, "3.00".into()),
        ]
    );
    app.clock.advance(chrono::Duration::hours(2));
    assert!(
        currency_conversion::conversions::service::finalize_due(&app.conversions())
            .await
            .unwrap()
            > 0
    );
    let token = fresh_token(&app, &partner.email).await;
    check(true, token).await;
    assert_eq!(made.len(), 5);
}

/// A page is read from the month it starts in first and from the months before only for what
/// that month lacks (`conversions::store::history::list`): walked with any page size, with
/// filters and time bounds, and whatever `now` is, the pages hold every matching conversion
/// once, newest first, across months with gaps between them.
#[tokio::test]
async fn pages_across_months_hold_every_matching_conversion_once_newest_first() {
    let app = app_with_rates(|s| {
        s.conversions.stale_rates = currency_conversion::settings::StaleRatePolicy::Allow;
    })
    .await;
    let partner = app.partner().await;
    let other = app.partner().await;
    let start = app.clock.now();
    // (days after the start, target currency, cancelled): three months with conversions,
    // months without any between them, and two on one day.
    let plan = [
        (0, "USD", false),
        (0, "JPY", true),
        (1, "USD", false),
        (45, "JPY", false),
        (130, "USD", true),
        (130, "JPY", false),
        (131, "USD", false),
        (132, "JPY", false),
    ];
    // (created_at, id, to, cancelled) of the partner's conversions.
    let mut made: Vec<(chrono::DateTime<chrono::Utc>, String, &str, bool)> = Vec::new();
    for (n, (days, to, cancel)) in plan.into_iter().enumerate() {
        let at = start + chrono::Duration::days(days) + chrono::Duration::minutes(n as i64);
        let c = convert_at(&app, &partner.email, at, to, "10.00", cancel).await;
        let id = c["id"].as_str().unwrap().to_owned();
        let created = chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        made.push((created, id, to, cancel));
        // Someone else's conversion in the same month: never on this partner's pages.
        let other_token = fresh_token(&app, &other.email).await;
        assert_eq!(
            app.convert(&other_token, "EUR", "USD", "1.00")
                .await
                .status(),
            201
        );
    }
    made.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let ts = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mid = made[3].0; // a bound inside the newest month but one
    let cases: Vec<(String, Vec<String>)> = vec![
        (String::new(), made.iter().map(|m| m.1.clone()).collect()),
        (
            "status=cancelled".into(),
            made.iter().filter(|m| m.3).map(|m| m.1.clone()).collect(),
        ),
        (
            "currency=JPY&status=temporary".into(),
            made.iter()
                .filter(|m| m.2 == "JPY" && !m.3)
                .map(|m| m.1.clone())
                .collect(),
        ),
        (
            format!("to={}", ts(mid)),
            made.iter()
                .filter(|m| m.0 < mid)
                .map(|m| m.1.clone())
                .collect(),
        ),
        (
            format!("from={}&to={}", ts(made[6].0), ts(mid)),
            made.iter()
                .filter(|m| m.0 >= made[6].0 && m.0 < mid)
                .map(|m| m.1.clone())
                .collect(),
        ),
        (
            format!("from={}", ts(mid)),
            made.iter()
                .filter(|m| m.0 >= mid)
                .map(|m| m.1.clone())
                .collect(),
        ),
    ];
    // `now` in the newest month, then months after it (the first step then finds nothing).
    for later in [0, 200] {
        app.clock.advance(chrono::Duration::days(later));
        let token = fresh_token(&app, &partner.email).await;
        for (filter, expected) in &cases {
            for limit in [1, 2, 3, 7, 50] {
                let mut seen = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let mut query = format!("limit={limit}");
                    if !filter.is_empty() {
                        query.push_str(&format!("&{filter}"));
                    }
                    if let Some(c) = &cursor {
                        query.push_str(&format!("&cursor={c}"));
                    }
                    let page: Value = app.history(&token, &query).await.json().await.unwrap();
                    let data = page["data"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{query}: {page}"));
                    assert!(data.len() <= limit, "{query}: {page}");
                    seen.extend(data.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
                    match page["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break,
                    }
                    assert!(seen.len() <= made.len(), "{query}: pages without end");
                }
                assert_eq!(
                    &seen, expected,
                    "filter `{filter}`, limit {limit}, now +{later} days"
                );
            }
        }
    }
}

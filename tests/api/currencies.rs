use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn admins_add_iso_currencies_with_catalogue_defaults() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": "kwd"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 201);
    let kwd: serde_json::Value = res.json().await.unwrap();
    assert_eq!(kwd["code"], "KWD");
    assert_eq!(kwd["minor_units"], 3);
    assert_eq!(kwd["name"], "Kuwaiti dinar");
    assert_eq!(kwd["numeric_code"], 414);
    assert_eq!(kwd["enabled"], true);

    let partner = app.partner().await;
    let list: serde_json::Value = app
        .get_with_token("/api/v1/currencies", &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["code"], "KWD");
    let one = app
        .get_with_token("/api/v1/currencies/kWd", &partner.token)
        .await;
    assert_eq!(one.status(), 200);
}

#[tokio::test]
async fn bad_currency_input_is_rejected_with_the_field_named() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (body, field) in [
        (json!({"code": "US"}), "code"),
        (json!({"code": "USDT"}), "code"),
        (json!({"code": "U5D"}), "code"),
        (json!({"code": "ABC"}), "code"),
        (json!({"code": "USD", "minor_units": 3}), "minor_units"),
        (
            json!({"code": "ABC", "iso": false, "name": "Alphabet coin", "minor_units": 9}),
            "minor_units",
        ),
        (
            json!({"code": "ABC", "iso": false, "minor_units": 2}),
            "name",
        ),
        (json!({"code": "XAU"}), "minor_units"),
        (json!({"code": "USD", "iso": false}), "iso"),
    ] {
        let res = app
            .post_json("/api/v1/currencies", &body, Some(&admin.token))
            .await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": 12}),
            Some(&admin.token),
        )
        .await;
    assert_problem(res, 422, "/problems/validation-failed").await;
}

#[tokio::test]
async fn non_iso_codes_need_an_explicit_opt_in() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": "xbt", "iso": false, "name": "Bitcoin", "minor_units": 4}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["is_iso"], false);
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": "XAU", "minor_units": 4}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn duplicates_conflict_and_concurrent_creates_have_one_winner() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let body = json!({"code": "CHF"});
    let attempts = (0..8).map(|_| app.post_json("/api/v1/currencies", &body, Some(&admin.token)));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts.map(Box::pin))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": "chf"}),
            Some(&admin.token),
        )
        .await;
    assert_problem(res, 409, "/problems/conflict").await;
}

#[tokio::test]
async fn partners_cannot_write_and_missing_currencies_are_404() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    let res = app
        .post_json(
            "/api/v1/currencies",
            &json!({"code": "USD"}),
            Some(&partner.token),
        )
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
    let res = app
        .patch_json(
            "/api/v1/currencies/USD",
            &json!({"enabled": false}),
            &partner.token,
        )
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
    assert_problem(
        app.delete("/api/v1/currencies/USD", &partner.token).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let res = app
        .patch_json(
            "/api/v1/currencies/GBP",
            &json!({"enabled": false}),
            &admin.token,
        )
        .await;
    assert_problem(res, 404, "/problems/not-found").await;
    assert_problem(
        app.delete("/api/v1/currencies/GBP", &admin.token).await,
        404,
        "/problems/not-found",
    )
    .await;
    let res = app
        .get_with_token("/api/v1/currencies?include_inactive=true", &partner.token)
        .await;
    assert_problem(res, 403, "/problems/forbidden").await;
}

#[tokio::test]
async fn disabled_currencies_are_hidden_from_partners_but_not_admins() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let partner = app.partner().await;
    app.post_json(
        "/api/v1/currencies",
        &json!({"code": "SEK"}),
        Some(&admin.token),
    )
    .await;
    let res = app
        .patch_json(
            "/api/v1/currencies/sek",
            &json!({"enabled": false}),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let list: serde_json::Value = app
        .get_with_token("/api/v1/currencies", &partner.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["data"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get_with_token("/api/v1/currencies/SEK", &partner.token)
            .await
            .status(),
        404
    );
    let all: serde_json::Value = app
        .get_with_token("/api/v1/currencies?include_inactive=true", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["data"][0]["enabled"], false);
}

#[tokio::test]
async fn deleting_an_unreferenced_currency_removes_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.post_json(
        "/api/v1/currencies",
        &json!({"code": "NOK"}),
        Some(&admin.token),
    )
    .await;
    let res = app.delete("/api/v1/currencies/NOK", &admin.token).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["outcome"], "deleted");
    assert_eq!(
        app.get_with_token("/api/v1/currencies/NOK", &admin.token)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn seeding_twice_changes_nothing() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let first = currency_conversion::currencies::service::seed_defaults(&app.db, now)
        .await
        .unwrap();
    let second = currency_conversion::currencies::service::seed_defaults(&app.db, now)
        .await
        .unwrap();
    // The ECB currencies quoted today plus EGP; BGN is historic, not counted as offered.
    assert_eq!(first, 31);
    assert_eq!(second, 0);
    let partner = app.partner().await;
    let list: serde_json::Value = app
        .get_with_token("/api/v1/currencies", &partner.token)
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"EGP") && codes.contains(&"USD") && codes.contains(&"JPY"));
}

#[tokio::test]
async fn a_name_with_control_characters_is_refused_on_its_field() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    let admin = app.admin().await;
    for name in ["US\u{0}dollar", "US\u{7}dollar"] {
        let res = app
            .patch_json(
                "/api/v1/currencies/USD",
                &json!({ "name": name }),
                &admin.token,
            )
            .await;
        let problem = assert_problem(res, 422, "/problems/validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
    }
    // Spaces and line breaks at the ends are trimmed, as before.
    let res = app
        .patch_json(
            "/api/v1/currencies/USD",
            &json!({ "name": "\n US dollar \t" }),
            &admin.token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["name"], "US dollar");
}

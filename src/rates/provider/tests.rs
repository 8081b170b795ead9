//! Parsing tests of every provider, from payloads as each one documents them.

use super::*;

fn c(s: &str) -> CurrencyCode {
    CurrencyCode::parse(s).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 9, 10, 0, 0).unwrap()
}

fn q<'a>(base: &str, symbols: &'a [CurrencyCode]) -> Query<'a> {
    Query {
        base: c(base),
        symbols,
        now: now(),
    }
}

fn rate(s: &Snapshot, code: &str) -> String {
    s.quotes[&c(code)].to_string()
}

#[test]
fn provider_names_round_trip_and_unknown_is_refused() {
    for kind in ProviderKind::ALL {
        assert_eq!(kind.as_str().parse::<ProviderKind>().unwrap(), kind);
    }
    assert_eq!(
        "ExchangeRate_API".parse::<ProviderKind>().unwrap(),
        ProviderKind::ExchangeRateApi
    );
    assert!("fixer".parse::<ProviderKind>().is_err());
    assert_eq!(ProviderKind::Ecb.base_for(c("USD")), c("EUR"));
    assert_eq!(ProviderKind::OpenExchangeRates.base_for(c("EUR")), c("USD"));
    assert_eq!(ProviderKind::Frankfurter.base_for(c("GBP")), c("GBP"));
}

#[test]
fn urls_follow_each_providers_documentation() {
    let syms = [c("USD"), c("GBP")];
    assert_eq!(
        ProviderKind::Frankfurter.latest_url("https://f.test/v1/", None, c("EUR"), &syms),
        "https://f.test/v1/latest?base=EUR&symbols=USD,GBP"
    );
    assert_eq!(
        ProviderKind::Ecb.latest_url("https://e.test", None, c("EUR"), &syms),
        "https://e.test/eurofxref-daily.xml"
    );
    let oxr = ProviderKind::OpenExchangeRates.latest_url(
        "https://o.test/api",
        Some("k3y"),
        c("USD"),
        &[],
    );
    assert_eq!(oxr, "https://o.test/api/latest.json?app_id=k3y");
    assert_eq!(
        redact(&oxr, Some("k3y")),
        "https://o.test/api/latest.json?app_id=[REDACTED]"
    );
    assert_eq!(
        ProviderKind::ExchangeRateApi.latest_url("https://x.test", Some("k"), c("USD"), &[]),
        "https://x.test/v6/k/latest/USD"
    );
}

#[test]
fn frankfurter_latest_is_parsed_without_floats() {
    let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.0788,"GBP":0.83123456789012345678}}"#;
    let s = parse_frankfurter(body, &q("EUR", &[])).unwrap();
    assert_eq!(s.provider, ProviderKind::Frankfurter);
    assert_eq!(s.base, c("EUR"));
    assert_eq!(
        s.as_of,
        Utc.with_ymd_and_hms(2024, 11, 8, 15, 0, 0).unwrap()
    );
    assert_eq!(rate(&s, "USD"), "1.0788");
    // More digits than an f64 holds survive intact.
    assert_eq!(rate(&s, "GBP"), "0.83123456789012345678");
}

#[test]
fn frankfurter_error_payload_is_reported() {
    let err = parse_frankfurter(br#"{"message":"not found"}"#, &q("EUR", &[])).unwrap_err();
    assert_eq!(err, ProviderError::Reported("not found".into()));
    assert!(!err.is_retryable());
    assert_eq!(
        ProviderKind::Frankfurter.error_message(br#"{"message":"not found"}"#),
        Some("not found".into())
    );
}

#[test]
fn frankfurter_scaled_amount_is_refused() {
    let body = br#"{"amount":10,"base":"EUR","date":"2024-11-08","rates":{"USD":10.788}}"#;
    assert!(matches!(
        parse_frankfurter(body, &q("EUR", &[])),
        Err(ProviderError::Invalid(InvalidData::AmountNotOne(_)))
    ));
}

#[test]
fn html_truncated_and_empty_bodies_are_malformed() {
    let html = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
    let truncated = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07"#;
    for parse in [
        parse_frankfurter,
        parse_open_exchange_rates,
        parse_exchangerate_api,
    ] {
        let e = parse(html, &q("EUR", &[])).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("HTML")),
            "{e}"
        );
        let e = parse(truncated, &q("EUR", &[])).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("truncated")),
            "{e}"
        );
        let e = parse(b"", &q("EUR", &[])).unwrap_err();
        assert!(matches!(e, ProviderError::Malformed(_)), "{e}");
        let e = parse(br#"{"unexpected":true}"#, &q("EUR", &[])).unwrap_err();
        assert!(matches!(e, ProviderError::Malformed(_)), "{e}");
        assert!(!e.is_retryable());
    }
}

#[test]
fn bad_rates_name_their_currency() {
    for (value, shown) in [
        ("0", "0"),
        ("-1.2", "-1.2"),
        ("\"abc\"", "\"abc\""),
        ("null", "null"),
        ("0.0", "0.0"),
    ] {
        let body = format!(
            r#"{{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{{"USD":1.07,"JPY":{value}}}}}"#
        );
        let err = parse_frankfurter(body.as_bytes(), &q("EUR", &[])).unwrap_err();
        assert_eq!(
            err,
            ProviderError::Invalid(InvalidData::BadRate {
                currency: "JPY".into(),
                value: shown.into()
            }),
            "{value}"
        );
    }
}

#[test]
fn exponent_notation_is_read_exactly() {
    let body = br#"{"timestamp":1449877801,"base":"USD","rates":{"BTC":1.5e-5,"EUR":0.92}}"#;
    let s = parse_open_exchange_rates(body, &q("USD", &[])).unwrap();
    assert_eq!(rate(&s, "BTC"), "0.000015");
}

#[test]
fn wrong_base_is_refused() {
    let body = br#"{"amount":1.0,"base":"USD","date":"2024-11-08","rates":{"EUR":0.92}}"#;
    assert_eq!(
        parse_frankfurter(body, &q("EUR", &[])).unwrap_err(),
        ProviderError::Invalid(InvalidData::WrongBase {
            expected: "EUR".into(),
            actual: "USD".into()
        })
    );
}

#[test]
fn future_timestamps_are_refused_within_skew() {
    let tomorrow = br#"{"amount":1.0,"base":"EUR","date":"2024-11-10","rates":{"USD":1.07}}"#;
    assert!(matches!(
        parse_frankfurter(tomorrow, &q("EUR", &[])),
        Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
    ));
    // Today's date before 15:00 UTC is accepted and clamped to now.
    let today = br#"{"amount":1.0,"base":"EUR","date":"2024-11-09","rates":{"USD":1.07}}"#;
    assert_eq!(
        parse_frankfurter(today, &q("EUR", &[])).unwrap().as_of,
        now()
    );

    let ts = |t: i64| format!(r#"{{"timestamp":{t},"base":"USD","rates":{{"EUR":0.92}}}}"#);
    let within = now().timestamp() + 4 * 60;
    let beyond = now().timestamp() + 6 * 60;
    assert!(parse_open_exchange_rates(ts(within).as_bytes(), &q("USD", &[])).is_ok());
    assert!(matches!(
        parse_open_exchange_rates(ts(beyond).as_bytes(), &q("USD", &[])),
        Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
    ));
}

#[test]
fn unknown_codes_are_counted_and_missing_symbols_listed() {
    let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07,"GBP":0.83,"XBTC":0.00001,"us":2}}"#;
    let wanted = [c("USD"), c("CHF")];
    let s = parse_frankfurter(body, &q("EUR", &wanted)).unwrap();
    assert_eq!(s.quotes.keys().copied().collect::<Vec<_>>(), vec![c("USD")]);
    assert_eq!(s.ignored_codes, 2);
    assert_eq!(s.missing, vec![c("CHF")]);
}

#[test]
fn empty_rates_are_refused() {
    let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{}}"#;
    assert_eq!(
        parse_frankfurter(body, &q("EUR", &[])).unwrap_err(),
        ProviderError::Invalid(InvalidData::NoRates)
    );
    // Only symbols the provider does not have: nothing usable either.
    let body = br#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07}}"#;
    assert_eq!(
        parse_frankfurter(body, &q("EUR", &[c("CHF")])).unwrap_err(),
        ProviderError::Invalid(InvalidData::NoRates)
    );
}

const OXR: &[u8] = br#"{
    "disclaimer": "Usage subject to terms: https://openexchangerates.org/terms",
    "license": "https://openexchangerates.org/license",
    "timestamp": 1449877801,
    "base": "USD",
    "rates": {"AED": 3.672538, "AFN": 66.809999, "USD": 1, "EUR": 0.910}
}"#;

#[test]
fn open_exchange_rates_latest_is_parsed() {
    let s = parse_open_exchange_rates(OXR, &q("USD", &[])).unwrap();
    assert_eq!(s.as_of, DateTime::from_timestamp(1449877801, 0).unwrap());
    assert_eq!(rate(&s, "AED"), "3.672538");
    assert_eq!(rate(&s, "EUR"), "0.91");
    // The base itself (1) is not a quote.
    assert!(!s.quotes.contains_key(&c("USD")));
    assert!(matches!(
        parse_open_exchange_rates(OXR, &q("EUR", &[])),
        Err(ProviderError::Invalid(InvalidData::WrongBase { .. }))
    ));
}

#[test]
fn base_listed_with_a_rate_other_than_one_is_refused() {
    let body = br#"{"timestamp":1449877801,"base":"USD","rates":{"USD":1.2,"EUR":0.9}}"#;
    assert!(matches!(
        parse_open_exchange_rates(body, &q("USD", &[])),
        Err(ProviderError::Invalid(InvalidData::BadRate { currency, .. })) if currency == "USD"
    ));
}

#[test]
fn open_exchange_rates_error_payload_is_reported() {
    let body = br#"{"error":true,"status":401,"message":"invalid_app_id","description":"Invalid App ID provided. Please sign up at https://openexchangerates.org/signup, or contact support@openexchangerates.org."}"#;
    let err = parse_open_exchange_rates(body, &q("USD", &[])).unwrap_err();
    assert!(
        matches!(&err, ProviderError::Reported(m) if m.starts_with("invalid_app_id: Invalid App ID")),
        "{err}"
    );
    assert!(
        ProviderKind::OpenExchangeRates
            .error_message(body)
            .unwrap()
            .starts_with("invalid_app_id")
    );
}

const ERA: &[u8] = br#"{
    "result": "success",
    "documentation": "https://www.exchangerate-api.com/docs",
    "terms_of_use": "https://www.exchangerate-api.com/terms",
    "time_last_update_unix": 1585267200,
    "time_last_update_utc": "Fri, 27 Mar 2020 00:00:00 +0000",
    "time_next_update_unix": 1585353700,
    "base_code": "USD",
    "conversion_rates": {"USD": 1, "AUD": 1.4817, "BGN": 1.7741, "CAD": 1.3168}
}"#;

#[test]
fn exchangerate_api_latest_is_parsed() {
    let wanted = [c("AUD"), c("CAD")];
    let s = parse_exchangerate_api(ERA, &q("USD", &wanted)).unwrap();
    assert_eq!(s.as_of, DateTime::from_timestamp(1585267200, 0).unwrap());
    assert_eq!(s.quotes.len(), 2);
    assert_eq!(rate(&s, "AUD"), "1.4817");
    assert!(s.missing.is_empty());
}

#[test]
fn exchangerate_api_error_payload_is_reported() {
    let err = parse_exchangerate_api(
        br#"{"result":"error","error-type":"invalid-key"}"#,
        &q("USD", &[]),
    )
    .unwrap_err();
    assert_eq!(err, ProviderError::Reported("invalid-key".into()));
    assert_eq!(
        ProviderKind::ExchangeRateApi
            .error_message(br#"{"result":"error","error-type":"quota-reached"}"#),
        Some("quota-reached".into())
    );
}

pub(crate) const ECB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender>
		<gesmes:name>European Central Bank</gesmes:name>
	</gesmes:Sender>
	<Cube>
		<Cube time='2024-11-08'>
			<Cube currency='USD' rate='1.0788'/>
			<Cube currency='JPY' rate='164.79'/>
			<Cube currency='GBP' rate='0.83050'/>
		</Cube>
	</Cube>
</gesmes:Envelope>"#;

#[test]
fn ecb_daily_xml_is_parsed() {
    let s = parse_ecb_daily_xml(ECB_XML.as_bytes(), &q("EUR", &[])).unwrap();
    assert_eq!(s.provider, ProviderKind::Ecb);
    assert_eq!(s.base, c("EUR"));
    assert_eq!(
        s.as_of,
        Utc.with_ymd_and_hms(2024, 11, 8, 15, 0, 0).unwrap()
    );
    assert_eq!(s.quotes.len(), 3);
    assert_eq!(rate(&s, "GBP"), "0.8305");
    assert_eq!(rate(&s, "JPY"), "164.79");
}

#[test]
fn ecb_ninety_day_file_uses_the_newest_day() {
    let xml = ECB_XML.replace(
        "</Cube>\n\t</Cube>",
        "</Cube>\n\t\t<Cube time='2024-11-07'><Cube currency='USD' rate='2'/><Cube currency='CHF' rate='0.9'/></Cube>\n\t</Cube>",
    );
    let s = parse_ecb_daily_xml(xml.as_bytes(), &q("EUR", &[])).unwrap();
    assert_eq!(rate(&s, "USD"), "1.0788");
    assert!(!s.quotes.contains_key(&c("CHF")));
}

#[test]
fn ecb_bad_documents_are_refused() {
    let truncated = &ECB_XML[..ECB_XML.len() - 40];
    assert!(matches!(
        parse_ecb_daily_xml(truncated.as_bytes(), &q("EUR", &[])),
        Err(ProviderError::Malformed(_))
    ));
    assert!(matches!(
        parse_ecb_daily_xml(b"<html><body>Maintenance</body></html>", &q("EUR", &[])),
        Err(ProviderError::Malformed(m)) if m.contains("envelope")
    ));
    assert!(matches!(
        parse_ecb_daily_xml(b"{\"json\":1}", &q("EUR", &[])),
        Err(ProviderError::Malformed(_))
    ));
    let negative = ECB_XML.replace("rate='164.79'", "rate='-164.79'");
    assert!(matches!(
        parse_ecb_daily_xml(negative.as_bytes(), &q("EUR", &[])),
        Err(ProviderError::Invalid(InvalidData::BadRate { currency, .. })) if currency == "JPY"
    ));
    let future = ECB_XML.replace("2024-11-08", "2024-12-01");
    assert!(matches!(
        parse_ecb_daily_xml(future.as_bytes(), &q("EUR", &[])),
        Err(ProviderError::Invalid(InvalidData::FutureTimestamp(_)))
    ));
    let empty_day = ECB_XML
        .lines()
        .filter(|l| !l.contains("currency="))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        parse_ecb_daily_xml(empty_day.as_bytes(), &q("EUR", &[])).unwrap_err(),
        ProviderError::Invalid(InvalidData::NoRates)
    );
}

#[test]
fn retryability_follows_the_status() {
    let status = |s: u16| ProviderError::Status {
        status: s,
        retry_after: None,
        message: None,
    };
    assert!(status(500).is_retryable());
    assert!(status(503).is_retryable());
    assert!(status(429).is_retryable());
    assert!(!status(401).is_retryable());
    assert!(!status(404).is_retryable());
    assert!(ProviderError::Timeout("x".into()).is_retryable());
    assert!(ProviderError::Transport("refused".into()).is_retryable());
    assert!(!ProviderError::Invalid(InvalidData::NoRates).is_retryable());
}

#[test]
fn snapshots_can_be_rebased_through_a_quoted_currency() {
    let s = parse_ecb_daily_xml(ECB_XML.as_bytes(), &q("EUR", &[])).unwrap();
    let usd = s.rebased(c("USD")).unwrap();
    assert_eq!(usd.base, c("USD"));
    assert_eq!(
        usd.quotes[&c("EUR")],
        Rate::parse("1.0788").unwrap().inverse()
    );
    assert!(!usd.quotes.contains_key(&c("USD")));
    assert!(s.rebased(c("CHF")).is_none());
}

//! The fetcher against local HTTP servers speaking each provider's format, through the real
//! reqwest code path. Waiting is recorded by an injected sleeper, never done.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::rates::provider::ProviderKind;

const KEY: &str = "s3cr3t-app-id-123";

#[derive(Clone)]
enum Reply {
    /// Status, extra headers, body.
    Http(u16, Vec<(&'static str, String)>, String),
    /// Accept and never answer.
    Hang,
}

fn ok(body: &str) -> Reply {
    Reply::Http(200, vec![], body.to_owned())
}

fn status(code: u16) -> Reply {
    Reply::Http(code, vec![], format!("<html><body>{code}</body></html>"))
}

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// Serves `script` in order, repeating the last reply once it runs out.
async fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (h, p) = (hits.clone(), paths.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = h.fetch_add(1, Ordering::SeqCst);
            let reply = script[n.min(script.len() - 1)].clone();
            let p = p.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                p.lock().unwrap().push(path);
                match reply {
                    Reply::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    Reply::Http(code, headers, body) => {
                        let mut out = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for (name, value) in headers {
                            out.push_str(&format!("{name}: {value}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&body);
                        let _ = socket.write_all(out.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    Server { url, hits, paths }
}

#[derive(Default)]
struct RecordingSleeper(Mutex<Vec<Duration>>);

impl RecordingSleeper {
    fn delays(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

fn c(s: &str) -> CurrencyCode {
    CurrencyCode::parse(s).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 9, 10, 0, 0).unwrap()
}

fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(300),
        max_attempts: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(60),
        breaker_threshold: 100,
        breaker_cooldown: Duration::from_secs(300),
        max_body_bytes: MAX_BODY_BYTES,
    }
}

fn endpoint(kind: ProviderKind, server: &Server) -> Endpoint {
    let key = kind.needs_api_key().then(|| SecretString::from(KEY));
    Endpoint::new(kind, Some(&server.url), key)
}

fn client(chain: Vec<Endpoint>, config: ClientConfig) -> (RatesClient, Arc<RecordingSleeper>) {
    let sleeper = Arc::new(RecordingSleeper::default());
    // A clock that stands still: a fetch takes no time unless a test moves it.
    let client = RatesClient::new(chain, config)
        .unwrap()
        .with_sleeper(sleeper.clone())
        .with_clock(Clock::manual(now()));
    (client, sleeper)
}

/// Waits by moving a manual clock, as if the time had passed.
struct ClockSleeper(Clock);

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0
            .advance(chrono::TimeDelta::from_std(duration).unwrap());
        Box::pin(async {})
    }
}

const FRANKFURTER: &str =
    r#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.0788,"GBP":0.8305}}"#;
const OXR: &str = r#"{"disclaimer":"Usage subject to terms","license":"https://openexchangerates.org/license","timestamp":1731060000,"base":"USD","rates":{"EUR":0.926956,"GBP":0.7699,"USD":1}}"#;
const ERA: &str = r#"{"result":"success","time_last_update_unix":1731024001,"base_code":"EUR","conversion_rates":{"EUR":1,"USD":1.0788,"GBP":0.8305}}"#;
const ECB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>
	<Cube>
		<Cube time='2024-11-08'>
			<Cube currency='USD' rate='1.0788'/>
			<Cube currency='GBP' rate='0.83050'/>
		</Cube>
	</Cube>
</gesmes:Envelope>"#;

fn no_key_anywhere(failures: &[(ProviderKind, String)]) {
    for (_, message) in failures {
        assert!(!message.contains(KEY), "key leaked: {message}");
    }
}

#[tokio::test]
async fn each_provider_format_is_fetched_and_parsed() {
    let symbols = [c("USD"), c("GBP")];
    let frankfurter = serve(vec![ok(FRANKFURTER)]).await;
    let (cl, _) = client(
        vec![endpoint(ProviderKind::Frankfurter, &frankfurter)],
        config(),
    );
    let out = cl.fetch(c("EUR"), &symbols, now()).await.unwrap();
    assert_eq!(out.snapshot.provider, ProviderKind::Frankfurter);
    assert_eq!(out.snapshot.quotes[&c("USD")].to_string(), "1.0788");
    assert!(out.failures.is_empty());
    assert_eq!(frankfurter.paths(), ["/latest?base=EUR&symbols=USD,GBP"]);

    let ecb = serve(vec![ok(ECB)]).await;
    let (cl, _) = client(vec![endpoint(ProviderKind::Ecb, &ecb)], config());
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(out.snapshot.quotes[&c("GBP")].to_string(), "0.8305");
    assert_eq!(ecb.paths(), ["/eurofxref-daily.xml"]);

    let oxr = serve(vec![ok(OXR)]).await;
    let (cl, _) = client(
        vec![endpoint(ProviderKind::OpenExchangeRates, &oxr)],
        config(),
    );
    // OXR's free plan is USD-based: asking for EUR gets a USD snapshot that quotes EUR.
    let out = cl.fetch(c("EUR"), &symbols, now()).await.unwrap();
    assert_eq!(out.snapshot.base, c("USD"));
    assert_eq!(out.snapshot.quotes[&c("EUR")].to_string(), "0.926956");
    assert_eq!(
        oxr.paths(),
        [format!("/latest.json?app_id={KEY}&symbols=GBP,EUR")]
    );
    let eur = out.snapshot.rebased(c("EUR")).unwrap();
    assert_eq!(eur.base, c("EUR"));
    assert!(eur.quotes.contains_key(&c("USD")));

    let era = serve(vec![ok(ERA)]).await;
    let (cl, _) = client(
        vec![endpoint(ProviderKind::ExchangeRateApi, &era)],
        config(),
    );
    let out = cl.fetch(c("EUR"), &symbols, now()).await.unwrap();
    assert_eq!(out.snapshot.quotes.len(), 2);
    assert_eq!(era.paths(), [format!("/v6/{KEY}/latest/EUR")]);
}

#[tokio::test]
async fn server_errors_are_retried_with_jittered_backoff() {
    let server = serve(vec![status(500), status(502), ok(FRANKFURTER)]).await;
    let (cl, sleeper) = client(vec![endpoint(ProviderKind::Frankfurter, &server)], config());
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(server.hits(), 3);
    assert_eq!(out.failures.len(), 2);
    assert!(out.failures[0].1.contains("HTTP 500"), "{:?}", out.failures);
    let delays = sleeper.delays();
    assert_eq!(delays.len(), 2);
    // Full jitter below base·2^(n-1): 10 ms, then 20 ms.
    assert!(delays[0] <= Duration::from_millis(10), "{delays:?}");
    assert!(delays[1] <= Duration::from_millis(20), "{delays:?}");
}

#[tokio::test]
async fn retry_after_seconds_and_dates_are_honoured() {
    let server = serve(vec![
        Reply::Http(429, vec![("Retry-After", "7".into())], "{}".into()),
        Reply::Http(
            503,
            vec![("Retry-After", "Sat, 09 Nov 2024 10:00:12 GMT".into())],
            String::new(),
        ),
        ok(FRANKFURTER),
    ])
    .await;
    let (cl, sleeper) = client(vec![endpoint(ProviderKind::Frankfurter, &server)], config());
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(out.snapshot.provider, ProviderKind::Frankfurter);
    assert_eq!(
        sleeper.delays(),
        [Duration::from_secs(7), Duration::from_secs(12)]
    );
    assert!(out.failures[0].1.contains("HTTP 429"), "{:?}", out.failures);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_over_without_waiting() {
    let limited = serve(vec![Reply::Http(
        429,
        vec![("Retry-After", "3600".into())],
        r#"{"message":"rate limited"}"#.into(),
    )])
    .await;
    let ecb = serve(vec![ok(ECB)]).await;
    let (cl, sleeper) = client(
        vec![
            endpoint(ProviderKind::Frankfurter, &limited),
            endpoint(ProviderKind::Ecb, &ecb),
        ],
        config(),
    );
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(out.snapshot.provider, ProviderKind::Ecb);
    assert_eq!(limited.hits(), 1);
    assert!(sleeper.delays().is_empty());
    assert!(
        out.failures[0].1.contains("rate limited"),
        "{:?}",
        out.failures
    );
    assert!(out.failures[1].1.contains("failing over"));
}

#[tokio::test]
async fn timeouts_are_retried_then_the_next_provider_answers() {
    let slow = serve(vec![Reply::Hang]).await;
    let ecb = serve(vec![ok(ECB)]).await;
    let mut cfg = config();
    cfg.max_attempts = 2;
    let (cl, sleeper) = client(
        vec![
            endpoint(ProviderKind::Frankfurter, &slow),
            endpoint(ProviderKind::Ecb, &ecb),
        ],
        cfg,
    );
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(out.snapshot.provider, ProviderKind::Ecb);
    assert_eq!(slow.hits(), 2);
    assert_eq!(sleeper.delays().len(), 1);
    assert_eq!(out.failures.len(), 2);
    assert!(
        out.failures
            .iter()
            .all(|(k, m)| *k == ProviderKind::Frankfurter && m.contains("timed out")),
        "{:?}",
        out.failures
    );
}

#[tokio::test]
async fn auth_errors_are_not_retried_and_keys_never_leak() {
    let oxr = serve(vec![Reply::Http(
        401,
        vec![],
        format!(
            r#"{{"error":true,"status":401,"message":"invalid_app_id","description":"Invalid App ID {KEY} provided."}}"#
        ),
    )])
    .await;
    let era = serve(vec![ok(r#"{"result":"error","error-type":"invalid-key"}"#)]).await;
    let (cl, sleeper) = client(
        vec![
            endpoint(ProviderKind::OpenExchangeRates, &oxr),
            endpoint(ProviderKind::ExchangeRateApi, &era),
        ],
        config(),
    );
    let err = cl.fetch(c("USD"), &[], now()).await.unwrap_err();
    assert_eq!(oxr.hits(), 1);
    assert_eq!(era.hits(), 1);
    assert!(sleeper.delays().is_empty());
    assert_eq!(err.failures.len(), 2);
    assert!(err.failures[0].1.contains("HTTP 401: invalid_app_id"));
    assert!(err.failures[1].1.contains("invalid-key"));
    no_key_anywhere(&err.failures);
    assert!(!err.to_string().contains(KEY));
    assert!(!format!("{cl:?}").contains(KEY));
}

#[tokio::test]
async fn connection_errors_are_redacted_transport_failures() {
    // A port nobody listens on: bind, note it, close.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut cfg = config();
    cfg.max_attempts = 2;
    let sleeper = Arc::new(RecordingSleeper::default());
    let cl = RatesClient::new(
        vec![Endpoint::new(
            ProviderKind::ExchangeRateApi,
            Some(&closed),
            Some(SecretString::from(KEY)),
        )],
        cfg,
    )
    .unwrap()
    .with_sleeper(sleeper.clone());
    let err = cl.fetch(c("USD"), &[], now()).await.unwrap_err();
    assert_eq!(err.failures.len(), 2);
    assert!(
        err.failures[0].1.contains("transport error"),
        "{:?}",
        err.failures
    );
    assert!(err.failures[0].1.contains("/v6/[REDACTED]/latest/USD"));
    no_key_anywhere(&err.failures);
    assert_eq!(sleeper.delays().len(), 1);
}

#[tokio::test]
async fn an_open_breaker_names_the_failure_that_opened_it() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut cfg = config();
    cfg.max_attempts = 1;
    cfg.breaker_threshold = 1;
    let cl = RatesClient::new(
        vec![Endpoint::new(
            ProviderKind::Frankfurter,
            Some(&closed),
            None,
        )],
        cfg,
    )
    .unwrap()
    .with_sleeper(Arc::new(RecordingSleeper::default()));
    let symbols = [c("USD"), c("GBP"), c("JPY")];
    let first = cl.fetch(c("EUR"), &symbols, now()).await.unwrap_err();
    assert!(
        !first.failures[0].1.contains("symbols="),
        "the query makes the line long: {:?}",
        first.failures
    );
    let second = cl.fetch(c("EUR"), &symbols, now()).await.unwrap_err();
    let message = &second.failures[0].1;
    assert!(message.contains("circuit breaker open"), "{message}");
    assert!(
        message.contains("it opened after") && message.contains("onnection refused"),
        "the root cause is hidden: {message}"
    );
}

#[test]
fn attempts_that_failed_the_same_way_are_described_once() {
    let failures = vec![
        (
            ProviderKind::Frankfurter,
            "attempt 1/3: dns error".to_owned(),
        ),
        (
            ProviderKind::Frankfurter,
            "attempt 2/3: dns error".to_owned(),
        ),
        (
            ProviderKind::Frankfurter,
            "attempt 3/3: timed out".to_owned(),
        ),
        (ProviderKind::Ecb, "attempt 1/3: dns error".to_owned()),
        (
            ProviderKind::Ecb,
            "circuit breaker open for another 5s".to_owned(),
        ),
    ];
    assert_eq!(
        super::describe(&failures),
        "frankfurter: attempts 1-2/3: dns error; frankfurter: attempt 3/3: timed out; \
         ecb: attempt 1/3: dns error; ecb: circuit breaker open for another 5s"
    );
}

#[tokio::test]
async fn invalid_payloads_fail_over_without_retry() {
    let cases = [
        ok("<!DOCTYPE html><html>maintenance</html>"),
        ok(r#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":1.07"#),
        ok(r#"{"amount":1.0,"base":"EUR","date":"2024-11-08","rates":{"USD":0}}"#),
        ok(r#"{"amount":1.0,"base":"USD","date":"2024-11-08","rates":{"EUR":0.9}}"#),
        ok(r#"{"amount":1.0,"base":"EUR","date":"2024-11-30","rates":{"USD":1.07}}"#),
        ok(r#"{"message":"not found"}"#),
    ];
    for case in cases {
        let bad = serve(vec![case]).await;
        let ecb = serve(vec![ok(ECB)]).await;
        let (cl, sleeper) = client(
            vec![
                endpoint(ProviderKind::Frankfurter, &bad),
                endpoint(ProviderKind::Ecb, &ecb),
            ],
            config(),
        );
        let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
        assert_eq!(out.snapshot.provider, ProviderKind::Ecb);
        assert_eq!(bad.hits(), 1);
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert!(sleeper.delays().is_empty());
    }
}

#[tokio::test]
async fn breaker_opens_after_threshold_then_allows_one_trial_after_cooldown() {
    let server = serve(vec![status(500), status(500), status(500), ok(FRANKFURTER)]).await;
    let mut cfg = config();
    cfg.max_attempts = 1;
    cfg.breaker_threshold = 2;
    cfg.breaker_cooldown = Duration::from_secs(60);
    let (cl, _) = client(vec![endpoint(ProviderKind::Frankfurter, &server)], cfg);

    assert!(cl.fetch(c("EUR"), &[], now()).await.is_err());
    assert_eq!(
        cl.breaker_states()[0].1,
        BreakerState::Closed {
            consecutive_failures: 1
        }
    );
    assert!(cl.fetch(c("EUR"), &[], now()).await.is_err());
    let reopen_at = now() + chrono::TimeDelta::seconds(60);
    assert_eq!(
        cl.breaker_states()[0].1,
        BreakerState::Open { until: reopen_at }
    );

    // Open: the provider is not called.
    let later = now() + chrono::TimeDelta::seconds(30);
    let err = cl.fetch(c("EUR"), &[], later).await.unwrap_err();
    assert_eq!(server.hits(), 2);
    assert!(
        err.failures[0]
            .1
            .contains("circuit breaker open for another 30s"),
        "{err}"
    );

    // After the cooldown: one trial, which fails and re-opens the breaker.
    assert!(cl.fetch(c("EUR"), &[], reopen_at).await.is_err());
    assert_eq!(server.hits(), 3);
    assert!(matches!(
        cl.breaker_states()[0].1,
        BreakerState::Open { .. }
    ));

    // Next trial succeeds and closes it.
    let again = reopen_at + chrono::TimeDelta::seconds(60);
    assert!(cl.fetch(c("EUR"), &[], again).await.is_ok());
    assert_eq!(
        cl.breaker_states()[0].1,
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[tokio::test]
async fn the_breaker_cooldown_runs_from_the_failure_and_says_what_remains() {
    let retry_in_30s = || Reply::Http(503, vec![("Retry-After", "30".into())], "{}".into());
    let server = serve(vec![retry_in_30s(), retry_in_30s()]).await;
    let mut cfg = config();
    cfg.max_attempts = 2;
    cfg.breaker_threshold = 2;
    cfg.breaker_cooldown = Duration::from_secs(60);
    let clock = Clock::manual(now());
    let cl = RatesClient::new(vec![endpoint(ProviderKind::Frankfurter, &server)], cfg)
        .unwrap()
        .with_sleeper(Arc::new(ClockSleeper(clock.clone())))
        .with_clock(clock.clone());

    // The first attempt fails at the start, the second 30 s later: that failure opens it.
    assert!(cl.fetch(c("EUR"), &[], clock.now()).await.is_err());
    assert_eq!(server.hits(), 2);
    let failed_at = now() + chrono::TimeDelta::seconds(30);
    assert_eq!(
        cl.breaker_states()[0].1,
        BreakerState::Open {
            until: failed_at + chrono::TimeDelta::seconds(60)
        }
    );

    // 70 s after the fetch started, 40 s after the failure: 20 s of cooldown remain.
    clock.advance(chrono::TimeDelta::seconds(40));
    let err = cl.fetch(c("EUR"), &[], clock.now()).await.unwrap_err();
    assert_eq!(server.hits(), 2);
    assert!(
        err.failures[0]
            .1
            .contains("circuit breaker open for another 20s"),
        "{err}"
    );
}

#[tokio::test]
async fn an_open_breaker_stops_retries_and_fails_over() {
    let failing = serve(vec![status(503)]).await;
    let ecb = serve(vec![ok(ECB)]).await;
    let mut cfg = config();
    cfg.max_attempts = 5;
    cfg.breaker_threshold = 2;
    let (cl, _) = client(
        vec![
            endpoint(ProviderKind::Frankfurter, &failing),
            endpoint(ProviderKind::Ecb, &ecb),
        ],
        cfg,
    );
    let out = cl.fetch(c("EUR"), &[], now()).await.unwrap();
    assert_eq!(failing.hits(), 2);
    assert_eq!(out.snapshot.provider, ProviderKind::Ecb);
    assert!(out.failures[2].1.contains("circuit breaker open"));
}

fn settings(provider: &str, url: &str, key: Option<&str>, fallbacks: &[&str]) -> RatesSettings {
    RatesSettings {
        provider: provider.parse().unwrap(),
        provider_url: (!url.is_empty()).then(|| url.parse().unwrap()),
        api_key: key.map(SecretString::from),
        fallbacks: fallbacks.iter().map(|s| s.parse().unwrap()).collect(),
        max_age_secs: 172800,
        base: c("EUR"),
        cache_ttl_secs: 30,
        connect_timeout_ms: 3000,
        request_timeout_ms: 10000,
        max_attempts: 3,
        backoff_base_ms: 500,
        breaker_threshold: 5,
        breaker_cooldown_secs: 300,
        sources: Vec::new(),
        source_keys: Default::default(),
        source_fetch_retention_days: 7,
        consensus: crate::settings::ConsensusSettings {
            max_deviation_bps: 100,
            min_sources: 2,
        },
    }
}

#[test]
fn chain_is_built_from_settings() {
    let cl = RatesClient::from_settings(&settings(
        "openexchangerates",
        "",
        Some(KEY),
        &[
            "frankfurter",
            "ecb=http://mirror.test/ecb",
            "openexchangerates=http://oxr-mirror.test/api",
        ],
    ))
    .unwrap();
    let chain: Vec<(ProviderKind, String)> = cl
        .endpoints()
        .map(|e| (e.kind(), e.base_url().to_owned()))
        .collect();
    assert_eq!(
        chain,
        [
            (
                ProviderKind::OpenExchangeRates,
                "https://openexchangerates.org/api".to_owned()
            ),
            (
                ProviderKind::Frankfurter,
                "https://api.frankfurter.dev/v1".to_owned()
            ),
            (ProviderKind::Ecb, "http://mirror.test/ecb".to_owned()),
            (
                ProviderKind::OpenExchangeRates,
                "http://oxr-mirror.test/api".to_owned()
            ),
        ]
    );
    assert!(!format!("{cl:?}").contains(KEY));
}

#[test]
fn bad_settings_name_their_key() {
    let err = |s: RatesSettings| format!("{:#}", RatesClient::from_settings(&s).unwrap_err());
    assert!(err(settings("exchangerate_api", "", None, &[])).contains("rates.api_key"));
    assert!(
        err(settings("frankfurter", "", None, &["openexchangerates"]))
            .contains("rates.fallbacks[0]")
    );
    assert!(
        err(settings(
            "frankfurter",
            "",
            None,
            &["ecb", "exchangerate_api"]
        ))
        .contains("rates.fallbacks[1]")
    );
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_cap() {
    let cfg = config();
    for _ in 0..50 {
        assert!(cfg.backoff(1) <= Duration::from_millis(10));
        assert!(cfg.backoff(3) <= Duration::from_millis(40));
        assert!(cfg.backoff(40) <= Duration::from_millis(100));
    }
}

#[test]
fn half_open_breaker_lets_exactly_one_trial_through() {
    let mut breaker = Breaker::new(1, Duration::from_secs(10));
    breaker.record_failure(now());
    let end = now() + chrono::TimeDelta::seconds(10);
    assert_eq!(breaker.try_acquire(now()), Err(Duration::from_secs(10)));
    assert_eq!(breaker.try_acquire(end), Ok(()));
    // A concurrent caller during the trial is refused.
    assert!(breaker.try_acquire(end).is_err());
    // An abandoned trial does not block the provider forever.
    assert_eq!(
        breaker.try_acquire(end + chrono::TimeDelta::seconds(10)),
        Ok(())
    );
    breaker.record_success();
    assert_eq!(breaker.try_acquire(end), Ok(()));
}

#[test]
fn zero_threshold_disables_the_breaker() {
    let mut breaker = Breaker::new(0, Duration::from_secs(10));
    for _ in 0..10 {
        breaker.record_failure(now());
    }
    assert_eq!(breaker.try_acquire(now()), Ok(()));
}

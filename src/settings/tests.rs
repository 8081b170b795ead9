use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/settings"))
}

#[test]
fn a_bad_typed_value_stops_the_load_naming_its_key() {
    let err = |pairs: &[(&str, &str)]| {
        format!(
            "{:#}",
            load_from(dir(), Environment::Local, env(pairs)).unwrap_err()
        )
    };
    let e = err(&[("CCS__RATES__PROVIDER", "fixer")]);
    assert!(e.contains("rates.provider") && e.contains("fixer"), "{e}");
    let e = err(&[("CCS__RATES__BASE", "EURO")]);
    assert!(e.contains("rates.base"), "{e}");
    let e = err(&[("CCS__RATES__FALLBACKS", "ecb,ecb=ftp://x")]);
    assert!(e.contains("rates.fallbacks[1]"), "{e}");
    let e = err(&[("CCS__TASKS__SCHEDULE__PRUNE_EXPIRED_DATA", "0 61 * * * *")]);
    assert!(e.contains("tasks.schedule.prune_expired_data"), "{e}");
    let e = err(&[("CCS__RATES__PROVIDER_URL", "not a url")]);
    assert!(
        e.contains("rates.provider_url") && e.contains("not a URL"),
        "{e}"
    );
    let e = err(&[("CCS__RATES__PROVIDER_URL", "ftp://mirror.example/v1")]);
    assert!(e.contains("rates.provider_url"), "{e}");
    let e = err(&[("CCS__LOG__LEVEL", "info,sqlx=loud")]);
    assert!(e.contains("log.level") && e.contains("sqlx=loud"), "{e}");
    let empty = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__RATES__FALLBACKS", "")]),
    )
    .unwrap();
    assert!(empty.rates.fallbacks.is_empty());
    let defaults = load_from(
        dir(),
        Environment::Local,
        env(&[
            ("CCS__RATES__PROVIDER_URL", ""),
            (
                "CCS__LOG__LEVEL",
                "info,sqlx=warn,currency_conversion::rates=debug",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(defaults.rates.provider_url, None);
    assert_eq!(
        defaults.log.level.as_str(),
        "info,sqlx=warn,currency_conversion::rates=debug"
    );
}

#[test]
fn environment_file_overrides_base() {
    let local = load_from(dir(), Environment::Local, env(&[])).unwrap();
    assert!(local.auth.registration_enabled);
    assert_eq!(local.server.port, 8080);
    let test = load_from(dir(), Environment::Test, env(&[])).unwrap();
    assert_eq!(test.server.port, 0);
}

#[test]
fn environment_variables_override_files() {
    let s = load_from(
        dir(),
        Environment::Local,
        env(&[
            ("CCS__SERVER__PORT", "9123"),
            ("CCS__RATES__FALLBACKS", "ecb,frankfurter"),
            ("CCS__TASKS__SCHEDULE__FETCH_RATES", "*/5 * * * * *"),
            ("DATABASE_URL", "postgres://postgres@db:5432/other"),
            ("JWT_SECRET", "an-environment-secret-of-enough-length-123"),
        ]),
    )
    .unwrap();
    assert_eq!(s.server.port, 9123);
    assert_eq!(
        s.rates.fallbacks.iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![ProviderKind::Ecb, ProviderKind::Frankfurter]
    );
    assert_eq!(s.tasks.schedule.fetch_rates, "*/5 * * * * *");
    assert_eq!(
        s.database.url.expose_secret(),
        "postgres://postgres@db:5432/other"
    );
    assert_eq!(
        s.auth.jwt_secret.expose_secret(),
        "an-environment-secret-of-enough-length-123"
    );
}

#[test]
fn invalid_values_name_their_key() {
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__SERVER__PORT", "eighty")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.port"), "{err}");
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__TASKS__SCHEDULE__PRUNE_EXPIRED_DATA", "daily")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tasks.schedule.prune_expired_data"), "{err}");
}

#[test]
fn a_missing_settings_folder_says_where_it_looked_and_how_to_point_elsewhere() {
    let err = load_from(Path::new("no/such/settings"), Environment::Local, env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no/such/settings/base.toml"), "{err}");
    assert!(err.contains("relative to the working directory"), "{err}");
    assert!(err.contains("CCS_SETTINGS_DIR"), "{err}");
}

#[test]
fn production_refuses_missing_dev_or_weak_secrets() {
    let missing = load_from(dir(), Environment::Production, env(&[])).unwrap_err();
    assert!(missing.to_string().contains("auth.jwt_secret"));
    let dev = load_from(
        dir(),
        Environment::Production,
        env(&[("JWT_SECRET", LOCAL_DEV_JWT_SECRET)]),
    )
    .unwrap_err();
    assert!(dev.to_string().contains("refused in production"));
    let weak = load_from(
        dir(),
        Environment::Production,
        env(&[("JWT_SECRET", &"ab".repeat(20))]),
    )
    .unwrap_err();
    assert!(weak.to_string().contains("too weak"));
    let ok = load_from(
        dir(),
        Environment::Production,
        env(&[("JWT_SECRET", "Zq8#rT2!mW9pLx4&vN7sKb1@dF6hJc3^")]),
    )
    .unwrap();
    assert!(!ok.auth.registration_enabled);
    assert_eq!(ok.log.format, LogFormat::Json);
}

#[test]
fn api_docs_are_on_locally_and_a_deliberate_choice_in_production() {
    let local = load_from(dir(), Environment::Local, env(&[])).unwrap();
    assert!(local.server.swagger_ui && local.server.openapi_document);
    let secret = ("JWT_SECRET", "Zq8#rT2!mW9pLx4&vN7sKb1@dF6hJc3^");
    let production = load_from(dir(), Environment::Production, env(&[secret])).unwrap();
    assert!(!production.server.swagger_ui && !production.server.openapi_document);
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__SERVER__OPENAPI_DOCUMENT", "false")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.swagger_ui"), "{err}");
}

#[test]
fn production_metrics_need_a_token_off_loopback() {
    let secret = ("JWT_SECRET", "Zq8#rT2!mW9pLx4&vN7sKb1@dF6hJc3^");
    let err = load_from(
        dir(),
        Environment::Production,
        env(&[secret, ("CCS__METRICS__EXPOSE", "api")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("metrics.expose"), "{err}");
    let with_token = load_from(
        dir(),
        Environment::Production,
        env(&[
            secret,
            ("CCS__METRICS__EXPOSE", "api"),
            (
                "CCS__METRICS__BEARER_TOKEN",
                "a-scraper-token-of-some-length",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(with_token.metrics.expose, MetricsExposure::Api);

    // The shipped production file: a listener of its own on 0.0.0.0, narrowed without a token.
    let production = load_from(dir(), Environment::Production, env(&[secret])).unwrap();
    let (address, why) = production
        .metrics
        .listen_address(Environment::Production)
        .unwrap();
    assert_eq!(address.to_string(), "127.0.0.1:9464");
    assert!(why.unwrap().contains("CCS__METRICS__BEARER_TOKEN"));
    let (address, why) = production
        .metrics
        .listen_address(Environment::Local)
        .unwrap();
    assert_eq!(
        (address.to_string(), why),
        ("0.0.0.0:9464".to_owned(), None)
    );
}

#[test]
fn debug_output_hides_secrets() {
    let s = load_from(dir(), Environment::Local, env(&[])).unwrap();
    assert!(!format!("{s:?}").contains(LOCAL_DEV_JWT_SECRET));
}

#[test]
fn a_duration_setting_beyond_a_century_is_refused_naming_its_key() {
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[(
            "CCS__CONVERSIONS__IDEMPOTENCY_TTL_SECS",
            "18446744073709551615",
        )]),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("conversions.idempotency_ttl_secs"),
        "{err:#}"
    );
    assert_eq!(secs(86_400), 86_400);
    assert_eq!(secs(u64::MAX), secs(MAX_SETTING_SECS));
    // Every `*_secs` setting is bounded, not only those read as chrono durations.
    for (var, key) in [
        ("CCS__AUTH__LOGIN_WINDOW_SECS", "auth.login_window_secs"),
        ("CCS__TASKS__RETRY_BASE_SECS", "tasks.retry_base_secs"),
        ("CCS__WEBHOOKS__TIMEOUT_SECS", "webhooks.timeout_secs"),
    ] {
        let err = load_from(dir(), Environment::Local, env(&[(var, "4000000000")])).unwrap_err();
        assert!(format!("{err:#}").contains(key), "{key}: {err:#}");
    }
}

#[test]
fn a_monitor_session_beyond_a_century_is_refused_naming_its_key() {
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__AUTH__MONITOR_SESSION_MAX_SECS", "9223372036854775808")]),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("auth.monitor_session_max_secs"),
        "{err:#}"
    );
    let fine = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__AUTH__MONITOR_SESSION_MAX_SECS", "3600")]),
    )
    .unwrap();
    assert_eq!(fine.auth.monitor_session_max_secs, 3600);
}

#[test]
fn a_rates_max_age_beyond_a_century_is_refused_naming_its_key() {
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__RATES__MAX_AGE_SECS", "18446744073709551615")]),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("rates.max_age_secs"), "{err:#}");
}

fn load_err(environment: Environment, pairs: &[(&str, &str)]) -> String {
    format!(
        "{:#}",
        load_from(dir(), environment, env(pairs)).unwrap_err()
    )
}

#[test]
fn an_unknown_variable_stops_the_load_naming_it_and_the_nearest_setting() {
    let e = load_err(Environment::Local, &[("CCS__SERVER__PROT", "9000")]);
    assert!(
        e.contains("unknown setting CCS__SERVER__PROT (did you mean CCS__SERVER__PORT?)"),
        "{e}"
    );
    let e = load_err(
        Environment::Local,
        &[("CCS__CONVERSIONS__HOLDING_PERIOD", "3")],
    );
    assert!(
        e.contains(
            "unknown setting CCS__CONVERSIONS__HOLDING_PERIOD (did you mean \
             CCS__CONVERSIONS__HOLDING_PERIOD_SECS?)"
        ),
        "{e}"
    );
    // Every unknown one is named at once, not one per attempt.
    let e = load_err(
        Environment::Test,
        &[("CCS__SERVR__PORT", "1"), ("CCS__COLOUR__SCHEME", "dark")],
    );
    assert!(
        e.contains("CCS__SERVR__PORT (did you mean CCS__SERVER__PORT?)"),
        "{e}"
    );
    assert!(e.contains("unknown setting CCS__COLOUR__SCHEME"), "{e}");
    assert!(!e.contains("CCS__COLOUR__SCHEME (did you mean"), "{e}");
}

#[test]
fn every_documented_setting_is_accepted_from_the_environment() {
    // base.toml is the list of settings: each of its keys set by its variable (to the value the
    // file holds) loads, including the optional secrets that are empty by default.
    let s = load_from(
        dir(),
        Environment::Local,
        env(&[
            ("CCS__RATES__API_KEY", ""),
            ("CCS__METRICS__BEARER_TOKEN", ""),
            ("CCS__AUTH__MONITOR_SESSION_MAX_SECS", "60"),
            ("CCS__QUOTES__SPREAD_BPS__DAY", "7"),
            ("CCS__TASKS__SCHEDULE__EXPIRE_QUOTES", "*/30 * * * * *"),
        ]),
    )
    .unwrap();
    assert!(s.rates.api_key.is_none() && s.metrics.bearer_token.is_none());
    assert_eq!(s.auth.monitor_session_max_secs, 60);
    assert_eq!(s.quotes.spread_bps.day, 7);
}

/// A settings folder in a scratch directory: the real base.toml and a given local.toml.
fn folder_with_local(local: &str) -> std::path::PathBuf {
    let folder = std::env::temp_dir().join(format!(
        "ccs-settings-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(dir().join("base.toml"), folder.join("base.toml")).unwrap();
    std::fs::write(folder.join("local.toml"), local).unwrap();
    folder
}

#[test]
fn an_unknown_file_key_stops_the_load_naming_the_file_and_the_nearest_key() {
    let folder = folder_with_local(
        "[auth]\njwt_secret = \"local-development-secret-do-not-use-in-production!\"\n\
         [server]\nprot = 9000\n",
    );
    let e = format!(
        "{:#}",
        load_from(&folder, Environment::Local, env(&[])).unwrap_err()
    );
    std::fs::remove_dir_all(&folder).unwrap();
    assert!(
        e.contains("unknown setting server.prot in ") && e.contains("(did you mean server.port?)"),
        "{e}"
    );
}

#[test]
fn a_provider_that_needs_a_key_is_refused_without_one() {
    for provider in ["openexchangerates", "exchangerate_api"] {
        let e = load_err(Environment::Local, &[("CCS__RATES__PROVIDER", provider)]);
        assert!(
            e.contains("rates.api_key")
                && e.contains(provider)
                && e.contains("CCS__RATES__API_KEY"),
            "{e}"
        );
        let blank = load_err(
            Environment::Local,
            &[
                ("CCS__RATES__PROVIDER", provider),
                ("CCS__RATES__API_KEY", "  "),
            ],
        );
        assert!(blank.contains("CCS__RATES__API_KEY"), "{blank}");
        let keyed = load_from(
            dir(),
            Environment::Local,
            env(&[
                ("CCS__RATES__PROVIDER", provider),
                ("CCS__RATES__API_KEY", "k-123"),
            ]),
        )
        .unwrap();
        assert_eq!(keyed.rates.provider.as_str(), provider);
    }
    let e = load_err(
        Environment::Local,
        &[("CCS__RATES__FALLBACKS", "ecb,openexchangerates")],
    );
    assert!(
        e.contains("rates.fallbacks[1]") && e.contains("openexchangerates"),
        "{e}"
    );
}

#[test]
fn describe_prints_each_setting_with_its_origin_and_hides_secrets() {
    let text = describe_from(
        dir(),
        Environment::Local,
        env(&[
            ("CCS__SERVER__PORT", "9100"),
            ("CCS__RATES__API_KEY", "very-secret-key"),
            (
                "DATABASE_URL",
                "postgres://app:pa55word@db.example:5432/ccs",
            ),
        ]),
    )
    .unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no line for {key} in\n{text}"))
            .to_owned()
    };
    assert!(
        line("server.port").contains("9100")
            && line("server.port").ends_with("# environment (CCS__SERVER__PORT)")
    );
    assert!(
        line("server.host").contains("# default (") && line("server.host").contains("base.toml")
    );
    assert!(
        line("auth.registration_enabled").contains("# file (")
            && line("auth.registration_enabled").contains("local.toml")
    );
    assert!(line("rates.api_key").contains("[redacted]"));
    assert!(line("auth.jwt_secret").contains("[redacted]"));
    assert!(line("database.url").contains("postgres://app:redacted@db.example:5432/ccs"));
    assert!(line("database.url").ends_with("# environment (DATABASE_URL)"));
    assert!(!text.contains("very-secret-key") && !text.contains("pa55word"));
    assert!(!text.contains("local-development-secret"));
    assert!(line("tasks.schedule.expire_quotes").contains("*/15 * * * * *"));
}

#[test]
fn idempotency_keys_are_kept_at_least_a_day_past_their_ttl() {
    let load = |value: &str| {
        load_from(
            dir(),
            Environment::Local,
            env(&[("CCS__CONVERSIONS__IDEMPOTENCY_RETENTION_SECS", value)]),
        )
    };
    let err = load("86399").unwrap_err();
    assert!(
        format!("{err:#}").contains("conversions.idempotency_retention_secs"),
        "{err:#}"
    );
    assert_eq!(
        load("86400")
            .unwrap()
            .conversions
            .idempotency_retention_secs,
        86_400
    );
    let err = load_from(
        dir(),
        Environment::Local,
        env(&[("CCS__TASKS__PRUNE_BATCH_SIZE", "0")]),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("tasks.prune_batch_size"),
        "{err:#}"
    );
}

#[test]
fn sources_and_their_keys_are_read_from_one_variable_each() {
    let s = load_from(
        dir(),
        Environment::Local,
        env(&[
            (
                "CCS__RATES__SOURCES",
                "a=frankfurter@http://127.0.0.1:9001,b=ecb,oxr=openexchangerates",
            ),
            ("CCS__RATES__SOURCE_KEYS", "oxr=APPID"),
            ("CCS__RATES__CONSENSUS__MIN_SOURCES", "3"),
        ]),
    )
    .unwrap();
    let names: Vec<&str> = s.rates.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "oxr"]);
    assert_eq!(s.rates.sources[0].kind, ProviderKind::Frankfurter);
    assert_eq!(
        s.rates.sources[0].url.as_ref().map(|u| u.as_str()),
        Some("http://127.0.0.1:9001")
    );
    assert_eq!(s.rates.sources[1].url, None);
    assert_eq!(s.rates.source_keys.0["oxr"].expose_secret(), "APPID");
    assert_eq!(s.rates.quorum(), 3);
    assert_eq!(s.rates.consensus.max_deviation_bps, 100);
    // The one-source case: the provider chain, a quorum of one.
    let one = load_from(dir(), Environment::Local, env(&[])).unwrap();
    assert!(one.rates.sources.is_empty());
    assert_eq!(one.rates.quorum(), 1);
}

#[test]
fn bad_sources_are_refused_naming_the_key() {
    let err = |pairs: &[(&str, &str)]| {
        format!(
            "{:#}",
            load_from(dir(), Environment::Local, env(pairs)).unwrap_err()
        )
    };
    let e = err(&[("CCS__RATES__SOURCES", "a=frankfurter,a=ecb")]);
    assert!(e.contains("rates.sources[1]") && e.contains("twice"), "{e}");
    let e = err(&[("CCS__RATES__SOURCES", "a=fixer")]);
    assert!(e.contains("rates.sources[0]") && e.contains("fixer"), "{e}");
    let e = err(&[("CCS__RATES__SOURCES", "a=frankfurter,oxr=openexchangerates")]);
    assert!(
        e.contains("rates.sources[1]") && e.contains("API key"),
        "{e}"
    );
    let e = err(&[
        ("CCS__RATES__SOURCES", "a=frankfurter"),
        ("CCS__RATES__SOURCE_KEYS", "b=SECRETKEY"),
    ]);
    assert!(
        e.contains("rates.source_keys") && !e.contains("SECRETKEY"),
        "{e}"
    );
    let e = err(&[
        ("CCS__RATES__SOURCES", "a=frankfurter,b=ecb"),
        ("CCS__RATES__CONSENSUS__MIN_SOURCES", "3"),
    ]);
    assert!(e.contains("rates.consensus.min_sources"), "{e}");
}

#[test]
fn group_writers_are_bounded_on_their_own_not_by_the_pool() {
    // The writers have connections of their own: more of them than the pool's size is fine.
    let settings = load_from(
        dir(),
        Environment::Local,
        env(&[
            ("CCS__DATABASE__MAX_CONNECTIONS", "4"),
            ("CCS__CONVERSIONS__GROUP_COMMIT_MAX_IN_FLIGHT", "8"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.conversions.group_commit_max_in_flight, 8);
    for refused in ["0", "65"] {
        let err = load_err(
            Environment::Local,
            &[("CCS__CONVERSIONS__GROUP_COMMIT_MAX_IN_FLIGHT", refused)],
        );
        assert!(
            err.contains("conversions.group_commit_max_in_flight"),
            "{err}"
        );
    }
}

//! The settings as the binary reads them from a shell: what a typo, a keyless provider and
//! `currency-conversion settings` print, before anything is served.

use std::process::{Command, Output};

/// Runs the built binary from the repository root with only `vars` as its environment (no
/// stray `CCS__` variable of the machine running the tests).
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_currency-conversion"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("APP_ENV", "local")
        .envs(vars.iter().copied())
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_typo_in_a_variable_stops_serve_naming_the_real_setting() {
    let out = run(&["serve"], &[("CCS__SERVER__PROT", "9000")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown setting CCS__SERVER__PROT (did you mean CCS__SERVER__PORT?)"),
        "{err}"
    );
    // Refused before anything else: no database was touched, nothing was logged.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_provider_without_its_key_stops_serve_naming_the_variable_to_set() {
    let out = run(&["serve"], &[("CCS__RATES__PROVIDER", "openexchangerates")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("openexchangerates") && err.contains("CCS__RATES__API_KEY"),
        "{err}"
    );
}

#[test]
fn settings_command_prints_values_with_their_origin_and_no_secret() {
    let out = run(
        &["settings"],
        &[
            ("CCS__SERVER__PORT", "9431"),
            ("JWT_SECRET", "a-secret-from-the-environment-0123456789"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
    };
    assert!(
        line("server.port").starts_with("server.port = 9431 ")
            && line("server.port").ends_with("# environment (CCS__SERVER__PORT)"),
        "{text}"
    );
    assert!(
        line("server.swagger_ui").ends_with("# file (settings/local.toml)"),
        "{text}"
    );
    assert!(
        line("tasks.workers").ends_with("# default (settings/base.toml)"),
        "{text}"
    );
    assert!(
        line("auth.jwt_secret").contains("[redacted]")
            && line("auth.jwt_secret").ends_with("# environment (JWT_SECRET)"),
        "{text}"
    );
    assert!(!text.contains("a-secret-from-the-environment"), "{text}");
}

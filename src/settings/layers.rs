//! The layers the settings are read from (`base.toml`, `{APP_ENV}.toml`, `CCS__…` variables and
//! the conventional `DATABASE_URL`, `REDIS_URL`, `JWT_SECRET`), which keys exist, and where each
//! effective value came from.
//!
//! `settings/base.toml` lists every setting, each with its default: it is the schema that a key
//! from any other layer is checked against. A key that is not in it (a typo such as
//! `CCS__SERVER__PROT`, or `holding_period` for `holding_period_secs`) stops start-up naming the
//! nearest real key, because a silently ignored setting costs more than a refused one. The
//! settings structs deny unknown fields and carry no serde defaults, so `base.toml` and the
//! structs cannot drift apart without every start failing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use config::{Source, Value, ValueKind};

/// The variables named by convention rather than `CCS__SECTION__KEY`, and the key each sets.
/// They win over every other layer.
pub(super) const CONVENTIONAL: [(&str, &str); 3] = [
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("JWT_SECRET", "auth.jwt_secret"),
];

/// Settings that are maps, whose keys the operator chooses (a currency code): any key under
/// them is a setting. `base.toml` has each as an empty table.
const MAP_SECTIONS: [&str; 1] = ["conversions.min_amounts"];

/// Whether `key` is a setting: a key of `base.toml`, or an entry of a map setting.
fn is_known(base: &BTreeMap<String, Value>, key: &str) -> bool {
    base.contains_key(key)
        || MAP_SECTIONS.iter().any(|section| {
            key.strip_prefix(section)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|entry| !entry.is_empty() && !entry.contains('.'))
        })
}

/// Keys whose values are never printed.
const SECRETS: [&str; 4] = [
    "auth.jwt_secret",
    "rates.api_key",
    "rates.source_keys",
    "metrics.bearer_token",
];
/// Keys holding URLs whose password (if any) is never printed.
const URLS_WITH_CREDENTIALS: [&str; 3] = ["database.url", "database.replica_url", "redis.url"];

/// Where a value came from, most general first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `settings/base.toml`.
    Default(String),
    /// `settings/{APP_ENV}.toml`.
    File(String),
    /// An environment variable, by name.
    Environment(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default(file) => write!(f, "default ({file})"),
            Origin::File(file) => write!(f, "file ({file})"),
            Origin::Environment(var) => write!(f, "environment ({var})"),
        }
    }
}

/// The key a `CCS__SECTION__KEY` variable sets: `section.key`.
pub fn env_var_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("CCS__")?;
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

/// The `CCS__SECTION__KEY` variable that sets `section.key`.
pub fn key_env_var(key: &str) -> String {
    format!("CCS__{}", key.to_ascii_uppercase().replace('.', "__"))
}

/// Every leaf of a settings file, by dotted key (lists are leaves).
fn file_leaves(path: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let table = config::File::from(path)
        .required(false)
        .collect()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    flatten(String::new(), table, &mut out);
    Ok(out)
}

fn flatten(prefix: String, table: config::Map<String, Value>, out: &mut BTreeMap<String, Value>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value.kind {
            ValueKind::Table(inner) => flatten(key, inner, out),
            _ => {
                out.insert(key, value);
            }
        }
    }
}

/// The settings sources, read but not yet merged.
pub(super) struct Layers {
    base_name: String,
    base: BTreeMap<String, Value>,
    env_file_name: String,
    env_file: BTreeMap<String, Value>,
    /// `CCS__…` variables: (variable, key).
    env_vars: Vec<(String, String)>,
    /// Conventional variables that are set (non-empty): (variable, key).
    conventional: Vec<(String, String)>,
}

impl Layers {
    pub(super) fn read(
        dir: &Path,
        env_file: &Path,
        env: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<Layers> {
        let base_path = dir.join("base.toml");
        let mut env_vars: Vec<(String, String)> = env
            .keys()
            .filter_map(|var| env_var_key(var).map(|key| (var.clone(), key)))
            .collect();
        env_vars.sort();
        Ok(Layers {
            base_name: base_path.display().to_string(),
            base: file_leaves(&base_path)?,
            env_file_name: env_file.display().to_string(),
            env_file: file_leaves(env_file)?,
            env_vars,
            conventional: CONVENTIONAL
                .iter()
                .filter(|(var, _)| env.get(*var).is_some_and(|v| !v.is_empty()))
                .map(|(var, key)| (var.to_string(), key.to_string()))
                .collect(),
        })
    }

    /// Refuses every key that `base.toml` does not have, each named as the user wrote it (a
    /// variable or a file key) with the nearest real one.
    pub(super) fn check_known_keys(&self) -> anyhow::Result<()> {
        let known: Vec<&str> = self.base.keys().map(String::as_str).collect();
        let mut problems = Vec::new();
        for key in self.env_file.keys() {
            if !is_known(&self.base, key) {
                let hint = nearest(key, &known)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                problems.push(format!(
                    "unknown setting {key} in {}{hint}",
                    self.env_file_name
                ));
            }
        }
        for (var, key) in &self.env_vars {
            if !is_known(&self.base, key) {
                let hint = nearest(key, &known)
                    .map(|k| format!(" (did you mean {}?)", key_env_var(k)))
                    .unwrap_or_default();
                problems.push(format!("unknown setting {var}{hint}"));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{}. The settings are the keys of {} (`currency-conversion settings` lists them)",
            problems.join("; "),
            self.base_name
        )
    }

    /// Where the effective value of `key` came from: the last layer that sets it.
    fn origin(&self, key: &str) -> Origin {
        if let Some((var, _)) = self.conventional.iter().find(|(_, k)| k == key) {
            return Origin::Environment(var.clone());
        }
        if let Some((var, _)) = self.env_vars.iter().rev().find(|(_, k)| k == key) {
            return Origin::Environment(var.clone());
        }
        if self.env_file.contains_key(key) {
            return Origin::File(self.env_file_name.clone());
        }
        Origin::Default(self.base_name.clone())
    }

    /// One line per setting, `key = value  # origin`, in the order of `base.toml`'s keys
    /// (sorted), secrets redacted. `merged` is the configuration after every layer.
    pub(super) fn describe(&self, merged: &config::Config) -> String {
        let mut effective = BTreeMap::new();
        if let Ok(table) = merged.collect() {
            flatten(String::new(), table, &mut effective);
        }
        // Every setting of base.toml, and the entries given to map settings.
        let mut keys: Vec<&String> = self.base.keys().collect();
        keys.extend(
            effective
                .keys()
                .filter(|k| !self.base.contains_key(*k) && is_known(&self.base, k)),
        );
        keys.sort();
        let lines: Vec<(String, Origin)> = keys
            .into_iter()
            .map(|key| {
                let value = effective
                    .get(key)
                    .map(|v| render(key, v))
                    .unwrap_or_else(|| "\"\"".into());
                (format!("{key} = {value}"), self.origin(key))
            })
            .collect();
        let width = lines
            .iter()
            .map(|(l, _)| l.len())
            .max()
            .unwrap_or(0)
            .min(60);
        let mut out = String::new();
        for (line, origin) in lines {
            let _ = writeln!(out, "{line:<width$}  # {origin}");
        }
        out
    }
}

/// A value as TOML would write it, secrets replaced.
fn render(key: &str, value: &Value) -> String {
    if SECRETS.contains(&key) {
        return match &value.kind {
            ValueKind::String(s) if s.is_empty() => "\"\" (unset)".into(),
            ValueKind::Nil => "\"\" (unset)".into(),
            _ => "\"[redacted]\"".into(),
        };
    }
    if URLS_WITH_CREDENTIALS.contains(&key)
        && let ValueKind::String(text) = &value.kind
    {
        return match reqwest::Url::parse(text) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("redacted"));
                format!("{:?}", url.as_str())
            }
            Ok(_) => format!("{text:?}"),
            // Not a URL: it may hold anything, so show nothing.
            Err(_) => "\"[redacted]\"".into(),
        };
    }
    render_plain(value)
}

fn render_plain(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(render_plain).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Nil => "\"\"".into(),
        other => other.to_string(),
    }
}

/// Levenshtein distance in characters: insertions, deletions and substitutions each count one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The known key nearest to `wanted`, if it is near enough to be what was meant: a key that
/// `wanted` is the start of (`holding_period` for `holding_period_secs`), else the closest
/// by edit distance within a third of the key's length (at least 2).
pub fn nearest<'a>(wanted: &str, known: &[&'a str]) -> Option<&'a str> {
    let wanted = wanted.to_ascii_lowercase();
    if let Some(extended) = known
        .iter()
        .filter(|k| k.starts_with(&wanted) && k.len() > wanted.len())
        .min_by_key(|k| k.len())
    {
        return Some(extended);
    }
    let limit = (wanted.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(&wanted, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("port", "port"), 0);
        assert_eq!(edit_distance("prot", "port"), 2);
        assert_eq!(edit_distance("por", "port"), 1);
        assert_eq!(edit_distance("portt", "port"), 1);
        assert_eq!(edit_distance("pint", "port"), 2);
        assert_eq!(edit_distance("", "port"), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    const KNOWN: [&str; 6] = [
        "server.port",
        "server.host",
        "conversions.holding_period_secs",
        "rates.provider",
        "rates.provider_url",
        "rates.api_key",
    ];

    #[test]
    fn a_typo_is_matched_to_the_nearest_key() {
        assert_eq!(nearest("server.prot", &KNOWN), Some("server.port"));
        assert_eq!(nearest("servr.port", &KNOWN), Some("server.port"));
        assert_eq!(nearest("server.hots", &KNOWN), Some("server.host"));
        assert_eq!(nearest("rates.apikey", &KNOWN), Some("rates.api_key"));
        assert_eq!(nearest("rates.providr", &KNOWN), Some("rates.provider"));
    }

    #[test]
    fn a_key_missing_its_unit_suffix_is_matched_to_the_full_key() {
        assert_eq!(
            nearest("conversions.holding_period", &KNOWN),
            Some("conversions.holding_period_secs")
        );
        // The shortest extension wins: `provider`, not `provider_url`.
        assert_eq!(nearest("rates.prov", &KNOWN), Some("rates.provider"));
    }

    #[test]
    fn nothing_is_suggested_for_a_key_unlike_any() {
        assert_eq!(nearest("colour.scheme", &KNOWN), None);
        assert_eq!(nearest("x", &KNOWN), None);
    }

    #[test]
    fn variables_and_keys_map_both_ways() {
        assert_eq!(
            env_var_key("CCS__QUOTES__SPREAD_BPS__NONE").as_deref(),
            Some("quotes.spread_bps.none")
        );
        assert_eq!(env_var_key("DATABASE_URL"), None);
        assert_eq!(key_env_var("server.port"), "CCS__SERVER__PORT");
    }

    #[test]
    fn secrets_and_url_passwords_are_redacted() {
        let text = |s: &str| Value::new(None, s.to_string());
        assert_eq!(
            render("auth.jwt_secret", &text("hunter2hunter2")),
            "\"[redacted]\""
        );
        assert_eq!(render("rates.api_key", &text("")), "\"\" (unset)");
        assert_eq!(
            render("database.url", &text("postgres://app:s3cret@db:5432/x")),
            "\"postgres://app:redacted@db:5432/x\""
        );
        assert_eq!(
            render("redis.url", &text("redis://127.0.0.1:6379")),
            "\"redis://127.0.0.1:6379\""
        );
        assert_eq!(render("server.host", &text("0.0.0.0")), "\"0.0.0.0\"");
    }
}

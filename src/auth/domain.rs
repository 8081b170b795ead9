//! Auth domain types, parsed at the boundary: once a value has the type, it is valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Any user's id (admin or partner), as stored in `users.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// Wraps an id read from the database or from a verified token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a user with the `partner` role: the owner of conversions, quotes and webhook
/// endpoints. A distinct type so that a conversion id, a quote id or an admin's id cannot be
/// passed where the owner is expected; routes get it from [`crate::auth::PartnerUser::id`] and
/// an admin's `partner_id` filter through [`PartnerId::from_uuid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct PartnerId(Uuid);

impl PartnerId {
    /// Wraps an id named as a partner's (a row's `partner_id`, an admin's filter). Whether such a
    /// partner exists is for the query to find out.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Stored as text in `users.role` (a CHECK constraint lists the values); a value this enum does
/// not know fails to decode instead of being read as some default role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Admin,
    Partner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "partner" => Some(Role::Partner),
            _ => None,
        }
    }
}

/// An email address, lower-cased (accounts are case-insensitive). Deliberately loose: one `@`,
/// non-empty local part, a dotted domain, no spaces or control characters, at most 254
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        // The limit counts what was sent, surrounding whitespace included, as the document's
        // `maxLength` does; a longer input is refused even when trimming would shorten it.
        if input.chars().count() > 254 {
            return Err("is longer than 254 characters");
        }
        let s = input.trim();
        if s.is_empty() {
            return Err("is required");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("is not an email address");
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err("is not an email address");
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 12 to 128 characters (OWASP: length over composition rules) that a
/// strength estimator does not find guessable.
///
/// zxcvbn (Dropbox's estimator, with its dictionaries of common passwords, names and words,
/// keyboard walks, sequences and repeats) must put it at score 3 or more: beyond about 10^10
/// guesses, what survives an offline attack on a slow hash. The user's own email and display name
/// count as known words, so `acme-2026-acme` does not pass for Acme. The refusal says why, in
/// zxcvbn's words.
pub struct NewPassword(String);

/// Lowest zxcvbn score accepted (0–4).
const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Three;

impl NewPassword {
    /// `user_inputs`: what an attacker knows about the account (email, display name).
    pub fn parse(input: &str, user_inputs: &[&str]) -> Result<Self, String> {
        let n = input.chars().count();
        if n < 12 {
            return Err("must be at least 12 characters".into());
        }
        if n > 128 {
            return Err("must be at most 128 characters".into());
        }
        let mut known: Vec<&str> = user_inputs.to_vec();
        // The local part of an email is the part people reuse in passwords.
        known.extend(
            user_inputs
                .iter()
                .filter_map(|i| i.split_once('@').map(|(local, _)| local)),
        );
        let estimate = zxcvbn::zxcvbn(input, &known);
        if estimate.score() < MIN_STRENGTH {
            return Err(guessable_because(estimate.feedback()));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn guessable_because(feedback: Option<&zxcvbn::feedback::Feedback>) -> String {
    let mut message = String::from("is too easy to guess");
    if let Some(warning) = feedback.and_then(|f| f.warning()) {
        message.push_str(&format!(" ({})", warning.to_string().trim_end_matches('.')));
    }
    message.push_str(": ");
    let suggestions: Vec<String> = feedback
        .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if suggestions.is_empty() {
        message.push_str("use a longer passphrase of several uncommon words.");
    } else {
        message.push_str(&suggestions.join(" "));
    }
    message
}

/// A display name: 1 to 200 characters after trimming.
pub fn parse_display_name(input: &str) -> Result<String, &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Err("is required");
    }
    if s.chars().count() > 200 {
        return Err("must be at most 200 characters");
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@x.io",
            "a@@x.io",
            "a@x.io.",
            "' OR 1=1 --",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(260))).is_err());
        // 254 characters of address are fine; with whitespace around them the input is longer
        // than the document's maxLength allows (found by schemathesis' ST201).
        let longest = format!("{}@x.io", "a".repeat(248));
        assert!(Email::parse(&longest).is_ok());
        assert!(Email::parse(&format!("\n\n{longest}")).is_err());
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(NewPassword::parse("short", &[]).is_err());
        assert!(NewPassword::parse("correct horse battery staple", &[]).is_ok());
        assert!(NewPassword::parse(&"x".repeat(129), &[]).is_err());
    }

    #[test]
    fn common_and_trivially_guessable_passwords_are_refused_with_a_reason() {
        for weak in [
            "password1234",
            "            ",
            "123456789012",
            "qwertyuiopas",
            "aaaaaaaaaaaa",
            "Password123!",
            "iloveyou2026",
        ] {
            let why = NewPassword::parse(weak, &[])
                .err()
                .unwrap_or_else(|| panic!("{weak:?} passed"));
            assert!(why.starts_with("is too easy to guess"), "{weak:?}: {why}");
        }
        let why = NewPassword::parse("password1234", &[])
            .err()
            .unwrap_or_default();
        assert!(why.contains("common"), "{why}");
    }

    #[test]
    fn the_users_own_email_and_name_count_as_guessable() {
        assert!(NewPassword::parse("acmetrading2026", &[]).is_ok());
        assert!(
            NewPassword::parse("acmetrading2026", &["acmetrading@example.com", "Acme"]).is_err()
        );
    }

    #[test]
    fn passwords_used_in_tests_and_docs_are_strong_enough() {
        for ok in [
            "correct horse battery staple",
            "Quartz lantern drifts over 7 bays",
            "bench admin password for load runs",
        ] {
            assert!(NewPassword::parse(ok, &[]).is_ok(), "{ok:?}");
        }
    }
}

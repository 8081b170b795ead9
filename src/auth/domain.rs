//! Auth domain types, parsed at the boundary: once a value has the type, it is valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::AuthError;

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
/// characters. Request bodies deserialise straight into it, so a bad address is a 422 naming
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for Email {
    type Error = &'static str;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(&input)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The email a login names: anything non-blank. It is not refused for failing to be an address
/// (a malformed one is simply no account, and gets the same 401 as a wrong password, after
/// counting against the throttle); what it names, if anything, is parsed once here.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct LoginEmail {
    sent: String,
    email: Option<Email>,
}

impl LoginEmail {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if input.trim().is_empty() {
            return Err("is required");
        }
        Ok(Self {
            sent: input.to_owned(),
            email: Email::parse(input).ok(),
        })
    }

    /// The account's address, when what was sent is one.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// What names the login throttle's account bucket: the address, or what was sent when it is
    /// not one.
    pub fn throttle_subject(&self) -> &str {
        self.email.as_ref().map_or(&self.sent, Email::as_str)
    }
}

impl TryFrom<String> for LoginEmail {
    type Error = &'static str;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(&input)
    }
}

/// The password a login presents: opaque and non-empty, checked only against the stored hash.
/// Its `Debug` hides it, so it cannot reach a log.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub struct LoginPassword(String);

impl LoginPassword {
    pub fn parse(input: String) -> Result<Self, &'static str> {
        if input.is_empty() {
            return Err("is required");
        }
        Ok(Self(input))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl TryFrom<String> for LoginPassword {
    type Error = &'static str;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(input)
    }
}

impl fmt::Debug for LoginPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginPassword(<hidden>)")
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

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<hidden>)")
    }
}

/// A display name: 1 to 200 characters after trimming the ends, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
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
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = &'static str;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(&input)
    }
}

/// A new account's details, each valid: what registration, the admin API and the CLI hand to
/// [`super::service::create_account`].
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub display_name: DisplayName,
    pub password: NewPassword,
}

impl NewAccount {
    /// Checks the password, which must not be guessable from the account's own email and display
    /// name.
    pub fn new(email: Email, display_name: DisplayName, password: &str) -> Result<Self, AuthError> {
        let password = NewPassword::parse(password, &[email.as_str(), display_name.as_str()])
            .map_err(|m| AuthError::invalid("password", m))?;
        Ok(Self {
            email,
            display_name,
            password,
        })
    }

    /// From raw input (the CLI, the seed), field by field: email, display name, password.
    pub fn parse(email: &str, display_name: &str, password: &str) -> Result<Self, AuthError> {
        let email = Email::parse(email).map_err(|m| AuthError::invalid("email", m))?;
        let display_name =
            DisplayName::parse(display_name).map_err(|m| AuthError::invalid("display_name", m))?;
        Self::new(email, display_name, password)
    }
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
    fn passwords_never_show_in_debug_output() {
        let login = LoginPassword::parse("hunter2 hunter2".into()).unwrap();
        assert!(!format!("{login:?}").contains("hunter2"));
        let new = NewPassword::parse("correct horse battery staple", &[]).unwrap();
        assert!(!format!("{new:?}").contains("horse"));
        assert!(LoginPassword::parse(String::new()).is_err());
    }

    #[test]
    fn a_login_email_is_anything_non_blank_and_names_an_account_only_when_it_is_one() {
        assert!(LoginEmail::parse("  ").is_err());
        let odd = LoginEmail::parse("' OR '1'='1").unwrap();
        assert!(odd.email().is_none());
        assert_eq!(odd.throttle_subject(), "' OR '1'='1");
        let real = LoginEmail::parse(" Alice@Example.COM").unwrap();
        assert_eq!(real.email().map(Email::as_str), Some("alice@example.com"));
        assert_eq!(real.throttle_subject(), "alice@example.com");
    }

    #[test]
    fn display_names_are_trimmed_and_checked() {
        assert_eq!(DisplayName::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
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

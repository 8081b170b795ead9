//! Auth domain types, parsed at the boundary: once a value has the type, it is valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
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
/// non-empty local part, a dotted domain, no spaces or control characters, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is required");
        }
        if s.len() > 254 {
            return Err("is longer than 254 characters");
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

/// A new password: 12 to 128 characters (OWASP: length over composition rules).
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let n = input.chars().count();
        if n < 12 {
            return Err("must be at least 12 characters");
        }
        if n > 128 {
            return Err("must be at most 128 characters");
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
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
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("correct horse battery").is_ok());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
    }
}

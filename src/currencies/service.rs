//! Currency use cases, and the functions other modules call to ask about currencies (they never
//! read the `currencies` table themselves).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::CurrencyCode;
use super::catalogue;
use super::store::{self, CurrencyRow, NewCurrency};
use crate::error::ApiError;
use crate::error::unique_violation;
use crate::money::MAX_MINOR_UNITS;

#[derive(Debug, thiserror::Error)]
pub enum CurrencyError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("currency {0} is not supported")]
    NotFound(CurrencyCode),
    #[error("currency {0} already exists")]
    AlreadyExists(CurrencyCode, bool),
    #[error("currency {0} is disabled")]
    Disabled(CurrencyCode),
    #[error("currency {0} is retired")]
    Retired(CurrencyCode),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CurrencyError {
    fn from(e: sqlx::Error) -> Self {
        CurrencyError::Unexpected(e.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> CurrencyError {
    CurrencyError::Invalid {
        field,
        message: message.into(),
    }
}

/// A currency as the API shows it and other modules use it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Currency {
    pub code: CurrencyCode,
    pub name: String,
    /// Decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3).
    pub minor_units: i16,
    pub numeric_code: Option<i16>,
    /// Whether the code is in ISO 4217.
    pub is_iso: bool,
    /// Offered for new conversions.
    pub enabled: bool,
    /// Deleted by an admin while history references it: kept and readable, never offered.
    pub retired: bool,
    pub retired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Currency {
    pub fn usable(&self) -> bool {
        self.enabled && !self.retired
    }
}

impl From<CurrencyRow> for Currency {
    fn from(r: CurrencyRow) -> Self {
        Self {
            code: r.code,
            name: r.name,
            minor_units: r.minor_units,
            numeric_code: r.numeric_code,
            is_iso: r.is_iso,
            enabled: r.enabled,
            retired: r.retired_at.is_some(),
            retired_at: r.retired_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub fn parse_code(field: &'static str, raw: &str) -> Result<CurrencyCode, CurrencyError> {
    CurrencyCode::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

/// What an admin asks for when adding a currency.
pub struct AddCurrency {
    pub code: CurrencyCode,
    pub name: Option<CurrencyName>,
    pub minor_units: Option<i16>,
    /// Must be `false` (explicitly) to add a code that is not in ISO 4217.
    pub iso: Option<bool>,
    pub enabled: Option<bool>,
}

/// A currency's name as stored: trimmed, 1 to 100 characters, no control characters (PostgreSQL
/// text cannot hold a NUL, and a name is shown in lists and CSV exports). Parsed where a request
/// is read, so an admin's bad name is a 422 on `name` before anything else is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyName(String);

impl CurrencyName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("must be 1 to 100 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for CurrencyName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

pub async fn add(
    db: &PgPool,
    req: AddCurrency,
    now: DateTime<Utc>,
) -> Result<Currency, CurrencyError> {
    let code = req.code;
    if let Some(m) = req.minor_units
        && !(0..=MAX_MINOR_UNITS).contains(&m)
    {
        return Err(invalid(
            "minor_units",
            format!("must be between 0 and {MAX_MINOR_UNITS}"),
        ));
    }
    let entry = catalogue::lookup(code);
    let (name, minor_units, numeric, is_iso) = match (entry, req.iso) {
        (Some(_), Some(false)) => {
            return Err(invalid(
                "iso",
                format!("{code} is an ISO 4217 code; omit `iso` or set it to true"),
            ));
        }
        (Some(e), _) => {
            let minor = match (e.minor_units, req.minor_units) {
                (Some(iso), Some(given)) if iso != given => {
                    return Err(invalid(
                        "minor_units",
                        format!("ISO 4217 gives {code} {iso} minor units, not {given}"),
                    ));
                }
                (Some(iso), _) => iso,
                (None, Some(given)) => given,
                (None, None) => {
                    return Err(invalid(
                        "minor_units",
                        format!("ISO 4217 defines no minor units for {code}; give them explicitly"),
                    ));
                }
            };
            let name = match req.name {
                Some(name) => name,
                // The catalogue's names are ISO's, all well within the rules; a broken
                // catalogue entry is refused like a bad name rather than stored.
                None => CurrencyName::parse(&e.name).map_err(|m| invalid("name", m))?,
            };
            (name, minor, Some(e.numeric), true)
        }
        (None, Some(false)) => {
            let Some(minor) = req.minor_units else {
                return Err(invalid("minor_units", "is required for a non-ISO currency"));
            };
            let Some(name) = req.name else {
                return Err(invalid("name", "is required for a non-ISO currency"));
            };
            (name, minor, None, false)
        }
        (None, _) => {
            return Err(invalid(
                "code",
                format!(
                    "{code} is not an ISO 4217 code; to add it anyway send \"iso\": false with its name and minor_units"
                ),
            ));
        }
    };
    let new = NewCurrency {
        code,
        name: name.as_str(),
        minor_units,
        numeric_code: numeric,
        is_iso,
        enabled: req.enabled.unwrap_or(true),
        retired: false,
    };
    match store::insert(db, &new, now).await {
        Ok(row) => Ok(row.into()),
        Err(e) if unique_violation(&e) == Some("currencies_pkey") => {
            let retired = store::find(db, code)
                .await?
                .is_some_and(|r| r.retired_at.is_some());
            Err(CurrencyError::AlreadyExists(code, retired))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn list(db: &PgPool, include_inactive: bool) -> Result<Vec<Currency>, CurrencyError> {
    Ok(store::list(db, include_inactive)
        .await?
        .into_iter()
        .map(Currency::from)
        .collect())
}

/// Any known currency, usable or not (history needs retired ones).
pub async fn find(db: &PgPool, code: CurrencyCode) -> Result<Option<Currency>, CurrencyError> {
    Ok(store::find(db, code).await?.map(Currency::from))
}

/// A currency a client may see: enabled and not retired, unless `include_inactive`.
pub async fn get(
    db: &PgPool,
    code: CurrencyCode,
    include_inactive: bool,
) -> Result<Currency, CurrencyError> {
    match find(db, code).await? {
        Some(c) if include_inactive || c.usable() => Ok(c),
        _ => Err(CurrencyError::NotFound(code)),
    }
}

/// A currency that may be used for a new conversion or quote, or why not.
pub async fn require_usable(db: &PgPool, code: CurrencyCode) -> Result<Currency, CurrencyError> {
    match find(db, code).await? {
        None => Err(CurrencyError::NotFound(code)),
        Some(c) if c.retired => Err(CurrencyError::Retired(code)),
        Some(c) if !c.enabled => Err(CurrencyError::Disabled(code)),
        Some(c) => Ok(c),
    }
}

/// Whether `update` enabled a currency (the caller then asks for fresh rates).
pub async fn update(
    db: &PgPool,
    code: CurrencyCode,
    name: Option<CurrencyName>,
    enabled: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Currency, CurrencyError> {
    store::update(
        db,
        code,
        name.as_ref().map(CurrencyName::as_str),
        enabled,
        now,
    )
    .await?
    .map(Currency::from)
    .ok_or(CurrencyError::NotFound(code))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeleteOutcome {
    /// Nothing referenced it; the row is gone.
    Deleted,
    /// History references it; kept, hidden and refused for new conversions.
    Retired,
}

pub async fn delete(
    db: &PgPool,
    code: CurrencyCode,
    now: DateTime<Utc>,
) -> Result<DeleteOutcome, CurrencyError> {
    match store::delete(db, code).await {
        Ok(true) => Ok(DeleteOutcome::Deleted),
        Ok(false) => Err(CurrencyError::NotFound(code)),
        // 23503: a foreign key (rates, conversions) still points at it.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
            store::retire(db, code, now)
                .await?
                .ok_or(CurrencyError::NotFound(code))?;
            Ok(DeleteOutcome::Retired)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes sure a code that appears in historical data (e.g. the ECB's CYP) exists, as a retired
/// currency when it is new, so history can reference it without offering it.
pub async fn ensure_historic(
    db: &PgPool,
    code: CurrencyCode,
    now: DateTime<Utc>,
) -> Result<(), CurrencyError> {
    let entry = catalogue::lookup(code);
    let name = entry
        .as_ref()
        .map(|e| e.name.clone())
        .unwrap_or_else(|| format!("{code} (historic)"));
    let new = NewCurrency {
        code,
        name: &name,
        minor_units: entry.as_ref().and_then(|e| e.minor_units).unwrap_or(2),
        numeric_code: entry.as_ref().map(|e| e.numeric),
        is_iso: entry.is_some(),
        enabled: false,
        retired: true,
    };
    store::insert_if_absent(db, &new, now).await?;
    Ok(())
}

/// The currencies seeded for a new installation: every currency the ECB quotes today, plus EGP
/// (the original system's home currency).
pub const DEFAULT_CODES: [&str; 30] = [
    "EUR", "USD", "JPY", "CZK", "DKK", "GBP", "HUF", "PLN", "RON", "SEK", "CHF", "ISK", "NOK",
    "TRY", "AUD", "BRL", "CAD", "CNY", "HKD", "IDR", "ILS", "INR", "KRW", "MXN", "MYR", "NZD",
    "PHP", "SGD", "THB", "ZAR",
];

/// Currencies that have been replaced (a country adopting the euro) with the day the
/// replacement took effect: history keeps them, nothing offers them. Earlier releases seeded
/// some of them as active, so `seed` retires them where they are still enabled.
pub const REPLACED_CODES: [(&str, &str); 1] = [
    // Bulgaria adopted the euro; the ECB stopped quoting the lev on 2026-01-01.
    ("BGN", "2026-01-01"),
];

/// Adds the default set (and EGP) as enabled ISO currencies and makes sure every replaced
/// currency is historic (retired); running it again changes nothing. Returns how many
/// currencies were added.
pub async fn seed_defaults(db: &PgPool, now: DateTime<Utc>) -> Result<usize, CurrencyError> {
    let mut added = 0;
    for raw in DEFAULT_CODES.iter().chain(["EGP"].iter()) {
        let code = parse_code("code", raw)?;
        let Some(entry) = catalogue::lookup(code) else {
            continue;
        };
        let new = NewCurrency {
            code,
            name: &entry.name,
            minor_units: entry.minor_units.unwrap_or(2),
            numeric_code: Some(entry.numeric),
            is_iso: true,
            enabled: true,
            retired: false,
        };
        if store::insert_if_absent(db, &new, now).await? {
            added += 1;
        }
    }
    for (raw, _since) in REPLACED_CODES {
        let code = parse_code("code", raw)?;
        match store::find(db, code).await? {
            Some(row) if row.retired_at.is_none() => {
                store::retire(db, code, now).await?;
            }
            Some(_) => {}
            None => ensure_historic(db, code, now).await?,
        }
    }
    Ok(added)
}

impl From<CurrencyError> for ApiError {
    fn from(e: CurrencyError) -> Self {
        use CurrencyError as C;
        match e {
            C::Invalid { field, message } => ApiError::validation(field, message),
            C::NotFound(code) => ApiError::NotFound(format!("currency {code} is not supported")),
            C::AlreadyExists(code, retired) => ApiError::Conflict(if retired {
                format!(
                    "currency {code} exists but is retired; PATCH it with \"enabled\": true to bring it back"
                )
            } else {
                format!("currency {code} already exists")
            }),
            C::Disabled(code) => ApiError::Unprocessable {
                slug: "currency-disabled",
                detail: format!("currency {code} is disabled"),
            },
            C::Retired(code) => ApiError::Unprocessable {
                slug: "currency-retired",
                detail: format!(
                    "currency {code} is retired and cannot be used for new conversions"
                ),
            },
            C::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

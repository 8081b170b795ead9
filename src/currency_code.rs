//! `CurrencyCode`: three upper-case ASCII letters. Input is case-insensitive; output is always
//! upper-case. Whether a code is ISO 4217 or supported is a separate question (the catalogue and
//! the `currencies` table answer it). Shared core, below the capabilities: settings hold codes too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a currency code: expected three letters such as USD")]
pub struct InvalidCurrencyCode(pub String);

impl CurrencyCode {
    pub fn parse(input: &str) -> Result<Self, InvalidCurrencyCode> {
        let bytes = input.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            let shown: String = input.chars().take(16).collect();
            return Err(InvalidCurrencyCode(shown));
        }
        Ok(Self([
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ]))
    }

    pub fn as_str(&self) -> &str {
        // Constructed from ASCII letters only.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for CurrencyCode {
    type Err = InvalidCurrencyCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurrencyCode({})", self.as_str())
    }
}

impl Serialize for CurrencyCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CurrencyCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for CurrencyCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Za-z]{3}$"))
            .description(Some(
                "Currency code, three letters (case-insensitive on input, upper-case on output)",
            ))
            .examples([serde_json::json!("USD")])
            .into()
    }
}

impl utoipa::ToSchema for CurrencyCode {}

/// A comma-separated list of currency codes in a query (`symbols=EUR,GBP`): 1 to
/// [`CurrencyCodes::MAX`] codes, in the order given, none listed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyCodes(Vec<CurrencyCode>);

impl CurrencyCodes {
    /// Most codes one list may name.
    pub const MAX: usize = 200;

    pub fn parse(input: &str) -> Result<Self, InvalidCurrencyCodes> {
        if input.split(',').count() > Self::MAX {
            return Err(InvalidCurrencyCodes(format!(
                "`{}…` lists more than {} currencies",
                input.chars().take(16).collect::<String>(),
                Self::MAX
            )));
        }
        let mut out: Vec<CurrencyCode> = Vec::new();
        for part in input.split(',') {
            let code =
                CurrencyCode::parse(part).map_err(|e| InvalidCurrencyCodes(e.to_string()))?;
            if out.contains(&code) {
                return Err(InvalidCurrencyCodes(format!("{code} is listed twice")));
            }
            out.push(code);
        }
        Ok(Self(out))
    }

    pub fn into_vec(self) -> Vec<CurrencyCode> {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCurrencyCodes(String);

impl<'de> Deserialize<'de> for CurrencyCodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CurrencyCodes::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for CurrencyCodes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(format!(
                "^[A-Za-z]{{3}}(,[A-Za-z]{{3}}){{0,{}}}$",
                Self::MAX - 1
            )))
            .description(Some(
                "Comma-separated currency codes, 1 to 200, none listed twice",
            ))
            .examples([serde_json::json!("EUR,GBP")])
            .into()
    }
}

impl utoipa::ToSchema for CurrencyCodes {}

impl sqlx::Type<sqlx::Postgres> for CurrencyCode {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for CurrencyCode {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for CurrencyCode {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(CurrencyCode::parse(s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_letters_upper_cased() {
        assert_eq!(CurrencyCode::parse("usd").unwrap().as_str(), "USD");
        assert_eq!(CurrencyCode::parse("EgP").unwrap().to_string(), "EGP");
        for bad in ["", "US", "USDT", "U1D", "ÄBC", "us ", "💶💶💶"] {
            assert!(CurrencyCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn code_lists_are_comma_separated_codes_without_repeats() {
        let list = CurrencyCodes::parse("eur,GBP").unwrap().into_vec();
        assert_eq!(
            list,
            [
                CurrencyCode::parse("EUR").unwrap(),
                CurrencyCode::parse("GBP").unwrap()
            ]
        );
        for bad in ["", "EUR,", ",EUR", "EUR, GBP", "EURGBP", "EUR,eur"] {
            assert!(CurrencyCodes::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn json_round_trip_upper_cases() {
        let c: CurrencyCode = serde_json::from_str("\"gbp\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"GBP\"");
        assert!(serde_json::from_str::<CurrencyCode>("\"gb\"").is_err());
    }
}

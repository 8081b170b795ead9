//! The ISO 4217 catalogue, from the `iso_currency` crate (generated from the maintained ISO 4217
//! table): code, English name, minor units, numeric code. Used to validate admin input and to
//! fill in defaults.

use iso_currency::{Currency, IntoEnumIterator};

use super::CurrencyCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub code: CurrencyCode,
    pub name: String,
    /// `None` for codes without minor units in ISO 4217 (precious metals, testing codes).
    pub minor_units: Option<i16>,
    pub numeric: i16,
}

pub fn lookup(code: CurrencyCode) -> Option<CatalogueEntry> {
    let c = Currency::from_code(code.as_str())?;
    Some(CatalogueEntry {
        code,
        name: c.name().to_owned(),
        minor_units: c.exponent().map(|e| e as i16),
        numeric: c.numeric() as i16,
    })
}

pub fn all() -> impl Iterator<Item = CatalogueEntry> {
    Currency::iter().filter_map(|c| CurrencyCode::parse(c.code()).ok().and_then(lookup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_knows_minor_units() {
        let code = |s| CurrencyCode::parse(s).unwrap();
        assert_eq!(lookup(code("USD")).unwrap().minor_units, Some(2));
        assert_eq!(lookup(code("JPY")).unwrap().minor_units, Some(0));
        assert_eq!(lookup(code("KWD")).unwrap().minor_units, Some(3));
        assert_eq!(lookup(code("EGP")).unwrap().name, "Egyptian pound");
        assert_eq!(lookup(code("EUR")).unwrap().numeric, 978);
        assert!(lookup(code("ABC")).is_none());
        assert!(all().count() > 150);
    }
}

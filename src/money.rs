//! Money in one place: decimal amounts and rates, scale per the currency's minor units, and the
//! rounding rules. Nothing else in the service rounds.
//!
//! Rules:
//! - Amounts are `BigDecimal`, never floats, and travel as JSON strings.
//! - An input amount may not have more decimals than its currency's minor units (no silent
//!   truncation of what a partner sent).
//! - A converted result is rounded to the target currency's minor units with **half-even**
//!   (banker's) rounding: ties go to the even digit, so rounding errors do not drift one way.
//! - A cross rate derived from two stored quotes keeps [`RATE_SIGNIFICANT_DIGITS`] significant
//!   digits (half-even); the rate used is stored with the conversion so results are reproducible.

use std::fmt;
use std::str::FromStr;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Significant digits kept in a derived (cross) rate. Providers publish 4–6; 18 keeps the cross
/// rate exact to far below any minor unit for any amount we accept.
pub const RATE_SIGNIFICANT_DIGITS: u64 = 18;

/// Largest number of minor units any currency may have (ISO 4217 uses 0–4).
pub const MAX_MINOR_UNITS: i16 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal number")]
    NotDecimal(String),
    #[error("must be greater than zero")]
    NotPositive,
    #[error("has {given} decimal places; {currency} allows {allowed}")]
    TooManyDecimals {
        given: i64,
        allowed: i16,
        currency: String,
    },
    #[error("exceeds the maximum of {0}")]
    TooLarge(String),
}

/// Parses a decimal written the way people and JSON strings write it: optional sign, digits,
/// optional fraction. Rejects exponents, `NaN`, `inf`, spaces and empty strings, which
/// `BigDecimal::from_str` would partly accept.
pub fn parse_decimal(input: &str) -> Result<BigDecimal, MoneyError> {
    let bad = || MoneyError::NotDecimal(input.chars().take(40).collect());
    let digits = input.strip_prefix(['-', '+']).unwrap_or(input);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.len() <= 30
        && frac.len() <= 30
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !ok {
        return Err(bad());
    }
    BigDecimal::from_str(input).map_err(|_| bad())
}

/// A positive exchange rate: units of the quote currency per one unit of the base currency.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(BigDecimal);

impl Rate {
    pub fn new(value: BigDecimal) -> Result<Self, MoneyError> {
        if value <= BigDecimal::zero() {
            return Err(MoneyError::NotPositive);
        }
        Ok(Self(value.normalized()))
    }

    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        Self::new(parse_decimal(input.trim())?)
    }

    pub fn value(&self) -> &BigDecimal {
        &self.0
    }

    pub fn into_inner(self) -> BigDecimal {
        self.0
    }

    /// The rate from currency `a` to currency `b`, given both quoted against one pivot:
    /// `pivot_to_b / pivot_to_a`.
    pub fn cross(pivot_to_a: &Rate, pivot_to_b: &Rate) -> Rate {
        let q = (&pivot_to_b.0 / &pivot_to_a.0)
            .with_precision_round(
                std::num::NonZeroU64::new(RATE_SIGNIFICANT_DIGITS)
                    .unwrap_or(std::num::NonZeroU64::MIN),
                RoundingMode::HalfEven,
            )
            .normalized();
        Rate(q)
    }

    /// The inverse rate (b→a from a→b), with the same significant digits as a cross rate.
    pub fn inverse(&self) -> Rate {
        Rate::cross(self, &Rate(BigDecimal::from(1)))
    }

    /// This rate made worse for the partner by `spread_bps` basis points: fewer units of the
    /// target currency per unit of the source, `rate × (1 − bps / 10 000)`. Exact (a product
    /// of finite decimals), so nothing is rounded until the converted amount is.
    pub fn with_spread(&self, spread_bps: u32) -> Result<Rate, MoneyError> {
        let keep = BigDecimal::from(10_000_i64 - i64::from(spread_bps)) / BigDecimal::from(10_000);
        Rate::new(&self.0 * keep)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_plain_string())
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Rounds `value` to `minor_units` decimal places, half-even. The only rounding of money.
pub fn round_to_minor_units(value: &BigDecimal, minor_units: i16) -> BigDecimal {
    value.with_scale_round(i64::from(minor_units), RoundingMode::HalfEven)
}

/// Converts `amount` at `rate` and rounds to the target currency's minor units.
pub fn convert(amount: &BigDecimal, rate: &Rate, target_minor_units: i16) -> BigDecimal {
    round_to_minor_units(&(amount * rate.value()), target_minor_units)
}

/// A positive decimal as a partner writes an amount (a JSON string, a query parameter), read
/// where the request is read: plain notation, no exponent, `NaN` or spaces, greater than zero.
/// Which currency it is in is not known yet: [`Amount::of`] checks it against the currency's
/// minor units and the maximum.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestedAmount(BigDecimal);

impl RequestedAmount {
    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        let value = parse_decimal(input)?;
        if value <= BigDecimal::zero() {
            return Err(MoneyError::NotPositive);
        }
        Ok(Self(value.normalized()))
    }

    pub fn value(&self) -> &BigDecimal {
        &self.0
    }
}

impl fmt::Display for RequestedAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_plain_string())
    }
}

impl fmt::Debug for RequestedAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestedAmount({self})")
    }
}

/// From a JSON string (a JSON number is refused: see [`amount_as_text`]) or a query parameter.
impl<'de> Deserialize<'de> for RequestedAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = amount_as_text(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A positive amount of a currency, with no more decimals than its minor units allow.
#[derive(Clone, PartialEq, Eq)]
pub struct Amount(BigDecimal);

impl Amount {
    /// Both steps at once, from text: what the tests of the rules read best. The service parses
    /// a [`RequestedAmount`] where the request is read and calls [`Amount::of`] when the
    /// currency is known.
    #[cfg(test)]
    pub fn parse(
        input: &str,
        currency: &str,
        minor_units: i16,
        max: &BigDecimal,
    ) -> Result<Self, MoneyError> {
        Self::of(&RequestedAmount::parse(input)?, currency, minor_units, max)
    }

    /// `requested` as an amount of `currency`, which has `minor_units` decimals: refused when it
    /// has more decimals than that or is above `max`; otherwise at exactly that scale.
    pub fn of(
        requested: &RequestedAmount,
        currency: &str,
        minor_units: i16,
        max: &BigDecimal,
    ) -> Result<Self, MoneyError> {
        let normalized = &requested.0;
        let given = normalized.fractional_digit_count().max(0);
        if given > i64::from(minor_units) {
            return Err(MoneyError::TooManyDecimals {
                given,
                allowed: minor_units,
                currency: currency.to_owned(),
            });
        }
        if normalized > max {
            return Err(MoneyError::TooLarge(max.to_plain_string()));
        }
        Ok(Self(normalized.with_scale(i64::from(minor_units))))
    }

    pub fn value(&self) -> &BigDecimal {
        &self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_plain_string())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

/// Serialises a decimal as a JSON string in plain notation (never `1E+3`).
pub fn serialize_decimal<S: Serializer>(value: &BigDecimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_plain_string())
}

pub fn serialize_opt_decimal<S: Serializer>(
    value: &Option<BigDecimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&v.to_plain_string()),
        None => s.serialize_none(),
    }
}

/// Deserialises an amount that must arrive as a JSON string (`"1.50"`). A JSON number is
/// refused with a message that starts with the field's name, which the JSON error handler
/// reports on that field: a number has already been through a binary float on many clients,
/// so the decimal the partner meant is not knowable.
pub fn amount_as_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    struct AmountText;

    impl AmountText {
        fn refuse<E: serde::de::Error>(shown: impl std::fmt::Display) -> E {
            E::custom(format!(
                "amount: must be a JSON string such as \"{shown}\", not a number (amounts are \
                 decimals; JSON numbers are floats)"
            ))
        }
    }

    impl serde::de::Visitor<'_> for AmountText {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a decimal amount as a JSON string, such as \"1.50\"")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Err(Self::refuse(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Err(Self::refuse(v))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Err(Self::refuse(v))
        }
    }

    deserializer.deserialize_any(AmountText)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> BigDecimal {
        BigDecimal::from_str(s).unwrap()
    }

    #[test]
    fn a_requested_amount_is_a_positive_decimal_string_and_never_a_json_number() {
        let read = |v: serde_json::Value| {
            serde_json::from_value::<RequestedAmount>(v).map_err(|e| e.to_string())
        };
        assert_eq!(
            read(serde_json::json!("100.50")).unwrap().to_string(),
            "100.5"
        );
        let number = read(serde_json::json!(100.5)).unwrap_err();
        assert!(
            number.starts_with("amount: must be a JSON string"),
            "{number}"
        );
        assert_eq!(
            read(serde_json::json!("0")).unwrap_err(),
            "must be greater than zero"
        );
        assert_eq!(
            read(serde_json::json!("1e3")).unwrap_err(),
            "`1e3` is not a decimal number"
        );
        // Whether it suits a currency is the next question.
        let max = d("1000000");
        let requested = RequestedAmount::parse("1.505").unwrap();
        assert!(matches!(
            Amount::of(&requested, "USD", 2, &max),
            Err(MoneyError::TooManyDecimals { given: 3, .. })
        ));
        assert_eq!(
            Amount::of(&requested, "KWD", 3, &max).unwrap().to_string(),
            "1.505"
        );
    }

    #[test]
    fn a_spread_lowers_the_rate_by_its_basis_points_exactly() {
        let rate = Rate::parse("1.1").unwrap();
        assert_eq!(rate.with_spread(0).unwrap().to_string(), "1.1");
        assert_eq!(rate.with_spread(5).unwrap().to_string(), "1.09945");
        assert_eq!(rate.with_spread(50).unwrap().to_string(), "1.0945");
        let cross = Rate::parse("0.0205032618825722274").unwrap();
        assert_eq!(
            cross.with_spread(20).unwrap().to_string(),
            "0.0204622553588070829452"
        );
        assert!(rate.with_spread(10_000).is_err());
    }

    #[test]
    fn rounding_table_half_even_per_minor_units() {
        // (value, minor units, expected)
        let table = [
            ("2.345", 2, "2.34"),  // tie → even
            ("2.355", 2, "2.36"),  // tie → even
            ("2.3451", 2, "2.35"), // above the tie
            ("0.125", 2, "0.12"),
            ("0.135", 2, "0.14"),
            ("-2.345", 2, "-2.34"),
            ("1234.5", 0, "1234"), // JPY
            ("1235.5", 0, "1236"),
            ("1234.51", 0, "1235"),
            ("0.0005", 3, "0.000"), // KWD
            ("0.0015", 3, "0.002"),
            ("7.12345", 3, "7.123"),
            ("10", 2, "10.00"),
            ("0.00005", 4, "0.0000"),
            ("0.00015", 4, "0.0002"),
        ];
        for (value, minor, expected) in table {
            assert_eq!(
                round_to_minor_units(&d(value), minor).to_plain_string(),
                expected,
                "{value} at {minor}"
            );
        }
    }

    #[test]
    fn amounts_respect_minor_units_and_bounds() {
        let max = d("1000000");
        assert_eq!(
            Amount::parse("100", "USD", 2, &max).unwrap().to_string(),
            "100.00"
        );
        assert_eq!(
            Amount::parse("100.5", "USD", 2, &max).unwrap().to_string(),
            "100.50"
        );
        assert_eq!(
            Amount::parse("100.50", "USD", 2, &max).unwrap().to_string(),
            "100.50"
        );
        assert_eq!(
            Amount::parse("100.500", "USD", 2, &max)
                .unwrap()
                .to_string(),
            "100.50"
        );
        assert!(matches!(
            Amount::parse("100.505", "USD", 2, &max),
            Err(MoneyError::TooManyDecimals {
                given: 3,
                allowed: 2,
                ..
            })
        ));
        assert!(matches!(
            Amount::parse("1.5", "JPY", 0, &max),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert_eq!(
            Amount::parse("1.234", "KWD", 3, &max).unwrap().to_string(),
            "1.234"
        );
        for bad in ["0", "-1", "0.00"] {
            assert_eq!(
                Amount::parse(bad, "USD", 2, &max),
                Err(MoneyError::NotPositive),
                "{bad}"
            );
        }
        for bad in [
            "", "abc", "1e3", "NaN", "inf", " 1", "1.", ".5", "1,5", "0x10", "1.2.3",
        ] {
            assert!(
                matches!(
                    Amount::parse(bad, "USD", 2, &max),
                    Err(MoneyError::NotDecimal(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Amount::parse("1000000.01", "USD", 2, &max),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn cross_rates_divide_through_the_pivot() {
        // EUR pivot: 1 EUR = 1.1 USD, 0.85 GBP → 1 USD = 0.85/1.1 GBP
        let usd = Rate::parse("1.1").unwrap();
        let gbp = Rate::parse("0.85").unwrap();
        let usd_gbp = Rate::cross(&usd, &gbp);
        assert_eq!(usd_gbp.to_string(), "0.772727272727272727");
        let back = Rate::cross(&gbp, &usd);
        assert_eq!(back.to_string(), "1.29411764705882353");
        // Same currency on both sides is exactly 1.
        assert_eq!(Rate::cross(&usd, &usd).to_string(), "1");
        assert_eq!(Rate::parse("4").unwrap().inverse().to_string(), "0.25");
    }

    #[test]
    fn conversion_rounds_the_product_half_even() {
        let rate = Rate::parse("0.0205").unwrap();
        // 100 EGP at 0.0205 = 2.05 USD exactly
        assert_eq!(convert(&d("100.00"), &rate, 2).to_plain_string(), "2.05");
        // 1 at 0.0205 → 0.0205 → 0.02 (tie on 5 after the 2: 0.0205 → 0.02, even)
        assert_eq!(convert(&d("1"), &rate, 2).to_plain_string(), "0.02");
        let jpy = Rate::parse("151.235").unwrap();
        assert_eq!(convert(&d("2.00"), &jpy, 0).to_plain_string(), "302");
    }

    #[test]
    fn rates_must_be_positive_decimals() {
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("-1.2").is_err());
        assert!(Rate::parse("1e5").is_err());
        assert!(Rate::parse("NaN").is_err());
        assert_eq!(Rate::parse("1.08230").unwrap().to_string(), "1.0823");
    }
}

//! Money in one place: decimal amounts and rates, scale per the currency's minor units, and the
//! rounding rules. Nothing else in the service rounds.
//!
//! Rules:
//! - Amounts are `BigDecimal`, never floats, and travel as JSON strings.
//! - An input amount may not have more decimals than its currency's minor units (no silent
//!   truncation of what a partner sent).
//! - A partner's converted result is rounded to the target currency's minor units **toward
//!   zero** ([`convert`]): it never exceeds `amount × rate`, so no sequence of conversions
//!   (round trips, dust amounts split over a batch) can return more value than was put in. The
//!   fraction of a minor unit left over stays with the service.
//! - A result that rounds to zero is refused ([`MoneyError::ResultRoundsToZero`]): the partner
//!   would give an amount and receive nothing.
//! - Stored values are shown at their currency's minor units with **half-even** rounding
//!   ([`round_to_minor_units`]); they are already at that scale, so this changes no digit.
//! - A cross rate derived from two stored quotes keeps [`RATE_SIGNIFICANT_DIGITS`] significant
//!   digits (half-even); the rate used is stored with the conversion so results are reproducible.

use std::fmt;
use std::str::FromStr;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::currency_code::CurrencyCode;

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
    #[error("is below the minimum of {minimum} {currency}")]
    TooSmall { minimum: String, currency: String },
    #[error("converts to less than one minor unit of {currency} (0 at its {minor_units} decimals)")]
    ResultRoundsToZero { currency: String, minor_units: i16 },
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
        Ok(Self(normalized(&value)))
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
        let q = (&pivot_to_b.0 / &pivot_to_a.0).with_precision_round(
            std::num::NonZeroU64::new(RATE_SIGNIFICANT_DIGITS).unwrap_or(std::num::NonZeroU64::MIN),
            RoundingMode::HalfEven,
        );
        Rate(normalized(&q))
    }

    /// The inverse rate (b→a from a→b), with the same significant digits as a cross rate.
    pub fn inverse(&self) -> Rate {
        Rate::cross(self, &Rate(BigDecimal::from(1)))
    }

    /// This rate made worse for the partner by `spread_bps` basis points: fewer units of the
    /// target currency per unit of the source, `rate × (1 − bps / 10 000)`. Exact (a product
    /// of finite decimals), so nothing is rounded until the converted amount is.
    pub fn with_spread(&self, spread_bps: u32) -> Result<Rate, MoneyError> {
        // (10 000 − bps) × 10⁻⁴, built exactly: a BigDecimal division works to 100 digits and
        // was the largest single cost of pricing a `GET /convert`.
        let keep = BigDecimal::new(
            bigdecimal::num_bigint::BigInt::from(10_000_i64 - i64::from(spread_bps)),
            4,
        );
        Rate::new(&self.0 * keep)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&plain(&self.0))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&plain(&self.0))
    }
}

/// Rounds `value` to `minor_units` decimal places, half-even: how a stored value (already at
/// that scale) or a report's total is shown. Never used to price: see [`convert`].
pub fn round_to_minor_units(value: &BigDecimal, minor_units: i16) -> BigDecimal {
    value.with_scale_round(i64::from(minor_units), RoundingMode::HalfEven)
}

/// Converts `amount` at `rate` and rounds **toward zero** to the target currency's minor units,
/// so the result never exceeds `amount × rate`. A result of zero is refused: the partner would
/// pay and receive nothing. The only rounding of a price.
pub fn convert(
    amount: &BigDecimal,
    rate: &Rate,
    target: CurrencyCode,
    target_minor_units: i16,
) -> Result<BigDecimal, MoneyError> {
    let result = product_toward_zero(amount, rate.value(), i64::from(target_minor_units));
    if result <= BigDecimal::zero() {
        return Err(MoneyError::ResultRoundsToZero {
            currency: target.to_string(),
            minor_units: target_minor_units,
        });
    }
    Ok(result)
}

/// `a × b` rounded toward zero to `scale` decimal places: exactly
/// `(a * b).with_scale_round(scale, RoundingMode::Down)`. An amount (at most 30 digits) times a
/// rate (20 significant digits) fits in an `i128` for any amount a partner sends, and then the
/// product and its truncation are two integer operations instead of a big-integer product and
/// a rounding through bigdecimal's general path. Anything larger takes bigdecimal's path.
fn product_toward_zero(a: &BigDecimal, b: &BigDecimal, scale: i64) -> BigDecimal {
    let exact = || (a * b).with_scale_round(scale, RoundingMode::Down);
    let (Some((ma, sa)), Some((mb, sb))) = (small_parts(a), small_parts(b)) else {
        return exact();
    };
    let Some(product) = ma.checked_mul(mb) else {
        return exact();
    };
    let Some(product_scale) = sa.checked_add(sb) else {
        return exact();
    };
    let shift = product_scale - scale;
    let mantissa = if shift >= 0 {
        // Integer division truncates toward zero, as `RoundingMode::Down` does; past 10³⁸ the
        // divisor exceeds every i128, so the quotient is 0.
        u32::try_from(shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .map_or(0, |divisor| product / divisor)
    } else {
        let Some(m) = u32::try_from(-shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .and_then(|factor| product.checked_mul(factor))
        else {
            return exact();
        };
        m
    };
    BigDecimal::new(bigdecimal::num_bigint::BigInt::from(mantissa), scale)
}

/// What a price kept below the reference price: `amount × reference` rounded toward zero to the
/// target's minor units, less the partner's `result` (at a rate at or below the reference, so
/// never negative). What the service earned on the price, in the target currency.
pub fn markup_amount(
    amount: &BigDecimal,
    reference: &Rate,
    result: &BigDecimal,
    target_minor_units: i16,
) -> BigDecimal {
    let at_reference =
        product_toward_zero(amount, reference.value(), i64::from(target_minor_units));
    // Both terms are whole minor units (a stored result may carry trailing zeros): shown at
    // the currency's scale.
    let kept =
        (at_reference - result).with_scale_round(i64::from(target_minor_units), RoundingMode::Down);
    if kept < BigDecimal::zero() {
        BigDecimal::zero().with_scale(i64::from(target_minor_units))
    } else {
        kept
    }
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
        Ok(Self(normalized(&value)))
    }

    pub fn value(&self) -> &BigDecimal {
        &self.0
    }
}

impl fmt::Display for RequestedAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&plain(&self.0))
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

/// The OpenAPI schema of a [`RequestedAmount`]: a positive decimal string, as amounts are sent:
/// digits with an optional fraction, greater than zero (`+` allowed in front). How many decimals an amount may have depends on its currency's
/// minor units, and how large on `conversions.max_amount`: those answer 422 naming the field.
pub struct PositiveDecimal;

impl utoipa::PartialSchema for PositiveDecimal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                r"^\+?([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$",
            ))
            .max_length(Some(61))
            .description(Some(
                "Positive decimal number as a string, e.g. `100.00`, with at most the currency's minor units",
            ))
            .examples([serde_json::json!("100.00")])
            .into()
    }
}

impl utoipa::ToSchema for PositiveDecimal {}

/// What one amount may be: at most `max` units of any currency (`conversions.max_amount`), and
/// at least the currency's own minimum where one is set (`conversions.min_amounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Largest amount of any currency.
    pub max: BigDecimal,
    /// Smallest amount per currency; a currency not listed may go down to one minor unit.
    pub min: std::collections::HashMap<CurrencyCode, BigDecimal>,
}

impl Bounds {
    /// Only a maximum.
    pub fn up_to(max: BigDecimal) -> Self {
        Self {
            max,
            min: Default::default(),
        }
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
        let code =
            CurrencyCode::parse(currency).map_err(|_| MoneyError::NotDecimal(input.into()))?;
        Self::of(
            &RequestedAmount::parse(input)?,
            code,
            minor_units,
            &Bounds::up_to(max.clone()),
        )
    }

    /// `requested` as an amount of `currency`, which has `minor_units` decimals: refused when it
    /// has more decimals than that or lies outside `bounds`; otherwise at exactly that scale.
    pub fn of(
        requested: &RequestedAmount,
        currency: CurrencyCode,
        minor_units: i16,
        bounds: &Bounds,
    ) -> Result<Self, MoneyError> {
        let max = &bounds.max;
        let normalized = &requested.0;
        let given = normalized.fractional_digit_count().max(0);
        if given > i64::from(minor_units) {
            return Err(MoneyError::TooManyDecimals {
                given,
                allowed: minor_units,
                currency: currency.to_string(),
            });
        }
        if normalized > max {
            return Err(MoneyError::TooLarge(max.to_plain_string()));
        }
        if let Some(minimum) = bounds.min.get(&currency) {
            if normalized < minimum {
                return Err(MoneyError::TooSmall {
                    minimum: minimum.to_plain_string(),
                    currency: currency.to_string(),
                });
            }
        }
        Ok(Self(normalized.with_scale(i64::from(minor_units))))
    }

    pub fn value(&self) -> &BigDecimal {
        &self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&plain(&self.0))
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

/// `value` as an `i128` mantissa and its scale, when its digits fit: every amount and rate the
/// service stores does, and the fast paths of [`plain`], [`normalized`] and
/// [`product_toward_zero`] work on these instead of on `num_bigint`'s digits.
fn small_parts(value: &BigDecimal) -> Option<(i128, i64)> {
    use bigdecimal::num_traits::ToPrimitive;
    let (mantissa, scale) = value.as_bigint_and_scale();
    Some((mantissa.to_i128()?, scale))
}

/// `value` in plain notation (never `1E+3`), exactly as [`BigDecimal::to_plain_string`] writes
/// it. Every amount and rate the service stores has at most 38 digits, so its digits are
/// written from an `i128` rather than through `num_bigint`'s general radix conversion, which was
/// the largest cost of serialising a price (a `GET /convert` writes five decimals). Larger
/// values take the general path.
pub fn plain(value: &BigDecimal) -> String {
    let Some((n, scale)) = small_parts(value) else {
        return value.to_plain_string();
    };
    let magnitude = n.unsigned_abs();
    let mut digits = match u64::try_from(magnitude) {
        Ok(small) => small.to_string(),
        Err(_) => magnitude.to_string(),
    };
    // The placement of the point follows `FullScaleFormatter` (bigdecimal's `impl_fmt`).
    let len = digits.len() as i64;
    if scale <= 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
    } else if scale < len {
        digits.insert((len - scale) as usize, '.');
    } else {
        let zeros = (scale - len) as usize;
        let mut padded = String::with_capacity(scale as usize + 3);
        padded.push_str("0.");
        padded.extend(std::iter::repeat_n('0', zeros));
        padded.push_str(&digits);
        digits = padded;
    }
    if n < 0 {
        digits.insert(0, '-');
    }
    digits
}

/// `value` without trailing zeros (`1.2500` → `1.25`, `1200` → `1.2E+3`), exactly as
/// [`BigDecimal::normalized`] makes it. That one goes through the digits in base 10 and back
/// (a few hundred nanoseconds per rate, on every price); a value whose digits fit in an
/// `i128` loses its zeros by integer division here instead.
pub fn normalized(value: &BigDecimal) -> BigDecimal {
    let Some((mut n, mut scale)) = small_parts(value) else {
        return value.normalized();
    };
    if n == 0 {
        return BigDecimal::zero();
    }
    while n % 10 == 0 {
        n /= 10;
        scale -= 1;
    }
    BigDecimal::new(bigdecimal::num_bigint::BigInt::from(n), scale)
}

/// Serialises a decimal as a JSON string in plain notation (never `1E+3`).
pub fn serialize_decimal<S: Serializer>(value: &BigDecimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&plain(value))
}

pub fn serialize_opt_decimal<S: Serializer>(
    value: &Option<BigDecimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&plain(v)),
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
    /// Mantissas to hold our decimal helpers against bigdecimal's own: every length up to
    /// `i128`'s and past it, both signs, with and without trailing zeros.
    fn mantissas() -> Vec<bigdecimal::num_bigint::BigInt> {
        use bigdecimal::num_bigint::BigInt;
        let mut state: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        let mut all: Vec<BigInt> = vec![
            BigInt::from(0),
            BigInt::from(i128::MAX),
            BigInt::from(i128::MIN),
            BigInt::from(u64::MAX),
            BigInt::from(10i128.pow(38)),
            BigInt::from(i128::MAX) * BigInt::from(10) + BigInt::from(7),
            -(BigInt::from(i128::MAX) * BigInt::from(1000)),
        ];
        for digits in 1..=38 {
            for _ in 0..6 {
                state = state
                    .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                    .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
                let m = i128::try_from((state >> 1) % 10u128.pow(digits)).unwrap();
                all.push(BigInt::from(if state & 1 == 0 { m } else { -m }));
            }
        }
        for zeros in 0..=30u32 {
            for digits in [1i128, 7, 12, 205, 99_999, 123_456_789, 1_000_000_007] {
                if let Some(v) = digits.checked_mul(10i128.pow(zeros)) {
                    all.push(BigInt::from(v));
                    all.push(BigInt::from(-v));
                }
            }
        }
        all
    }

    /// Every mantissa of [`mantissas`] at scales that put the point before, inside and after
    /// its digits.
    fn decimals() -> impl Iterator<Item = bigdecimal::BigDecimal> {
        mantissas()
            .into_iter()
            .flat_map(|m| (-6..=42).map(move |scale| bigdecimal::BigDecimal::new(m.clone(), scale)))
    }

    #[test]
    fn plain_writes_every_decimal_as_bigdecimal_does() {
        use super::*;
        for value in decimals() {
            assert_eq!(plain(&value), value.to_plain_string(), "{value:?}");
        }
    }

    #[test]
    fn normalized_drops_the_same_zeros_as_bigdecimal() {
        use super::*;
        for value in decimals() {
            assert_eq!(
                normalized(&value).as_bigint_and_exponent(),
                value.normalized().as_bigint_and_exponent(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_product_is_truncated_as_bigdecimal_truncates_it() {
        use super::*;
        let all = mantissas();
        // Amounts and rates as they come (short mantissas at small scales) and the extremes.
        let amounts: Vec<_> = all.iter().step_by(3).collect();
        let rates: Vec<_> = all.iter().skip(1).step_by(5).collect();
        for a in &amounts {
            for (i, b) in rates.iter().enumerate() {
                for (sa, sb) in [(0, 0), (2, 18), (3, 9), (-2, 4), (8, 30), (0, -3)] {
                    let (x, y) = (
                        BigDecimal::new((*a).clone(), sa),
                        BigDecimal::new((*b).clone(), sb + (i % 3) as i64),
                    );
                    for scale in [0, 2, 3, 4, 8, -1] {
                        let ours = product_toward_zero(&x, &y, scale);
                        let theirs = (&x * &y).with_scale_round(scale, RoundingMode::Down);
                        assert_eq!(
                            ours.as_bigint_and_exponent(),
                            theirs.as_bigint_and_exponent(),
                            "{x} × {y} at scale {scale}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_rate_is_kept_normalized_however_it_is_made() {
        use super::*;
        let shown = |r: &Rate| (r.value().clone(), r.value().normalized());
        for r in [
            Rate::parse("1.10000").unwrap(),
            Rate::new(BigDecimal::new(1_500.into(), 3)).unwrap(),
            Rate::cross(&Rate::parse("1.25").unwrap(), &Rate::parse("2.5").unwrap()),
            Rate::parse("1.1000").unwrap().inverse(),
            Rate::parse("1.2").unwrap().with_spread(5_000).unwrap(),
        ] {
            let (kept, normalized) = shown(&r);
            assert_eq!(
                kept.as_bigint_and_exponent(),
                normalized.as_bigint_and_exponent(),
                "{r}"
            );
        }
    }

    #[test]
    fn a_spread_is_the_same_product_as_dividing_the_basis_points() {
        use super::*;
        for rate in [
            "1",
            "0.727272727272727273",
            "145.909090909090909",
            "1.1625",
            "3",
        ] {
            let rate = Rate::parse(rate).unwrap();
            for bps in (0..10_000).step_by(7).chain([9_999]) {
                let keep = BigDecimal::from(10_000_i64 - i64::from(bps)) / BigDecimal::from(10_000);
                let divided = Rate::new(rate.value() * keep).unwrap();
                let spread = rate.with_spread(bps).unwrap();
                assert_eq!(
                    spread.to_string(),
                    divided.to_string(),
                    "{rate} at {bps} bps"
                );
            }
        }
        assert!(Rate::parse("1").unwrap().with_spread(10_000).is_err());
    }

    use super::*;

    fn d(s: &str) -> BigDecimal {
        BigDecimal::from_str(s).unwrap()
    }

    fn code(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).unwrap()
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
        let bounds = Bounds::up_to(max);
        assert!(matches!(
            Amount::of(&requested, code("USD"), 2, &bounds),
            Err(MoneyError::TooManyDecimals { given: 3, .. })
        ));
        assert_eq!(
            Amount::of(&requested, code("KWD"), 3, &bounds)
                .unwrap()
                .to_string(),
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
    fn conversion_rounds_the_product_toward_zero() {
        let usd = code("USD");
        let rate = Rate::parse("0.0205").unwrap();
        // (amount, rate, target minor units, expected): never above amount × rate.
        let table = [
            ("100.00", "0.0205", 2, "2.05"), // exact
            ("1.99", "0.0205", 2, "0.04"),   // 0.040795 → 0.04 (half-even agrees)
            ("3", "0.0205", 2, "0.06"),      // 0.0615 → 0.06
            ("2.00", "151.235", 0, "302"),   // 302.47 → 302
            ("1.00", "151.995", 0, "151"),   // 151.995 → 151, where half-even gave 152
            ("1", "0.009999", 4, "0.0099"),
            ("7", "1.0005", 3, "7.003"), // 7.0035 → 7.003
        ];
        for (amount, r, minor, expected) in table {
            let rate = Rate::parse(r).unwrap();
            assert_eq!(
                convert(&d(amount), &rate, usd, minor)
                    .unwrap()
                    .to_plain_string(),
                expected,
                "{amount} at {r}"
            );
        }
        // 0.48 at 0.0205 is 0.00984: a cent would be a gift (half-even gave one); zero is
        // refused.
        assert_eq!(
            convert(&d("0.48"), &rate, usd, 2),
            Err(MoneyError::ResultRoundsToZero {
                currency: "USD".into(),
                minor_units: 2
            })
        );
    }

    #[test]
    fn one_yen_does_not_become_a_cent_and_a_cent_does_not_become_two_yen() {
        // USD per JPY and JPY per USD as the cross rates of the probe that found the minting.
        let jpy_usd = Rate::parse("0.0064").unwrap();
        let usd_jpy = Rate::parse("157.3").unwrap();
        assert!(matches!(
            convert(&d("1"), &jpy_usd, code("USD"), 2),
            Err(MoneyError::ResultRoundsToZero { .. })
        ));
        assert_eq!(
            convert(&d("0.01"), &usd_jpy, code("JPY"), 0).unwrap(),
            d("1")
        );
        assert_eq!(
            convert(&d("100"), &jpy_usd, code("USD"), 2).unwrap(),
            d("0.64")
        );
    }

    use crate::test_cases::Cases;

    #[test]
    fn a_round_trip_never_returns_more_than_it_started_with() {
        // Pivot rates of a few currencies of every kind of minor units (EUR pivot, ECB-like).
        let pivot = [
            ("EUR", "1", 2),
            ("USD", "1.0823", 2),
            ("JPY", "162.57", 0),
            ("KWD", "0.33241", 3),
            ("HUF", "392.18", 2),
            ("GBP", "0.83945", 2),
            ("IDR", "17364.12", 2),
            ("CLF", "0.0358", 4),
        ];
        let mut cases = Cases(0x5eed);
        let mut checked = 0;
        for _ in 0..10_000 {
            let a = &pivot[(cases.next() % pivot.len() as u64) as usize];
            let b = &pivot[(cases.next() % pivot.len() as u64) as usize];
            if a.0 == b.0 {
                continue;
            }
            let (ra, rb) = (Rate::parse(a.1).unwrap(), Rate::parse(b.1).unwrap());
            let there = Rate::cross(&ra, &rb);
            let back = Rate::cross(&rb, &ra);
            // A → B × B → A is 1 to within the 18 significant digits each cross rate keeps.
            let product = there.value() * back.value();
            assert!(
                (product - BigDecimal::from(1)).abs() < d("0.0000000000000001"),
                "{}/{}",
                a.0,
                b.0
            );
            // Amounts from one minor unit to ten million units of `a`.
            let units = cases.next() % 10_000_000_000;
            let amount = BigDecimal::new(units.into(), i64::from(a.2))
                + BigDecimal::new(1.into(), i64::from(a.2));
            let Ok(got) = convert(&amount, &there, code(b.0), b.2) else {
                continue;
            };
            let Ok(returned) = convert(&got, &back, code(a.0), a.2) else {
                continue;
            };
            assert!(
                returned <= amount,
                "{amount} {} → {got} {} → {returned} {}",
                a.0,
                b.0,
                a.0
            );
            checked += 1;
        }
        assert!(checked > 5_000, "only {checked} round trips were priced");
    }

    #[test]
    fn the_markup_amount_is_what_the_reference_price_gives_more() {
        let reference = Rate::parse("1.1").unwrap();
        let rate = reference.with_spread(25).unwrap(); // 1.097250
        let result = convert(&d("100.00"), &rate, code("USD"), 2).unwrap();
        assert_eq!(result, d("109.72"));
        // 110.00 at the reference rate: 0.28 kept.
        assert_eq!(
            markup_amount(&d("100.00"), &reference, &result, 2),
            d("0.28")
        );
        // No markup, nothing kept.
        let flat = convert(&d("100.00"), &reference, code("USD"), 2).unwrap();
        assert_eq!(markup_amount(&d("100.00"), &reference, &flat, 2), d("0.00"));
    }

    #[test]
    fn an_amount_below_the_currencys_minimum_is_refused() {
        let mut bounds = Bounds::up_to(d("1000000"));
        bounds.min.insert(code("JPY"), d("100"));
        let requested = RequestedAmount::parse("99").unwrap();
        assert_eq!(
            Amount::of(&requested, code("JPY"), 0, &bounds),
            Err(MoneyError::TooSmall {
                minimum: "100".into(),
                currency: "JPY".into()
            })
        );
        let hundred = RequestedAmount::parse("100").unwrap();
        assert!(Amount::of(&hundred, code("JPY"), 0, &bounds).is_ok());
        // No minimum for USD: one cent is an amount.
        let cent = RequestedAmount::parse("0.01").unwrap();
        assert!(Amount::of(&cent, code("USD"), 2, &bounds).is_ok());
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

//! One rate per currency from several sources' values for it, all against the pivot: the
//! median of the values, after excluding every value that is further from the median of all
//! of them than `rates.consensus.max_deviation_bps` or than a bound of median absolute
//! deviations. A currency with fewer agreeing values than the quorum gets no new rate: a
//! minority never sets a price. Cross rates are derived from the one pivot on read, so every
//! pair stays consistent (A→B × B→A = 1 within the rate's significant digits).

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use serde::Serialize;

use crate::currencies::CurrencyCode;
use crate::money::{RATE_SIGNIFICANT_DIGITS, Rate};

/// A deviation bound in scaled MADs: 3 × 1.4826 × MAD, where 1.4826 makes the MAD estimate a
/// standard deviation for normally distributed values. Honest sources of one reference rate
/// are rarely apart by more.
const MAD_BOUND: &str = "4.4478";

/// The MAD bound never excludes a value closer than this to the median (in basis points):
/// sources that agree to many digits would otherwise exclude one that rounds differently.
const MAD_FLOOR_BPS: u32 = 1;

/// When sources agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `rates.consensus.max_deviation_bps`.
    pub max_deviation_bps: u32,
    /// Agreeing values needed ([`crate::settings::RatesSettings::quorum`]).
    pub quorum: usize,
}

/// A source's value left out of a consensus, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// The source's name.
    pub source: String,
    /// Its value (units per one pivot).
    pub rate: Rate,
    /// The median of every source's value it was measured against.
    pub median: Option<Rate>,
    /// Why, in words (the deviation and the bound it broke).
    pub reason: String,
}

/// The consensus of one currency in one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The median of the agreeing values, or `None` below the quorum.
    pub rate: Option<Rate>,
    /// Sources whose values agree, by name (sorted).
    pub used: Vec<String>,
    /// Sources whose values were left out.
    pub excluded: Vec<Excluded>,
}

fn significant(value: BigDecimal) -> BigDecimal {
    value
        .with_precision_round(
            NonZeroU64::new(RATE_SIGNIFICANT_DIGITS).unwrap_or(NonZeroU64::MIN),
            RoundingMode::HalfEven,
        )
        .normalized()
}

/// The median of `values` (not empty), exact for an odd count and the mean of the middle two
/// (at a rate's significant digits) for an even one.
fn median(values: &[BigDecimal]) -> BigDecimal {
    let mut sorted: Vec<&BigDecimal> = values.iter().collect();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2].clone()
    } else {
        significant((sorted[n / 2 - 1] + sorted[n / 2]) / BigDecimal::from(2))
    }
}

/// Basis points of `distance` against `median`, rounded to two decimals for the reason text.
fn bps(distance: &BigDecimal, median: &BigDecimal) -> BigDecimal {
    (distance * BigDecimal::from(10_000) / median).with_scale_round(2, RoundingMode::HalfEven)
}

/// The consensus of one currency's values, `(source name, value)`.
pub fn agree(values: &[(String, Rate)], rules: Rules) -> Agreement {
    if values.is_empty() {
        return Agreement {
            rate: None,
            used: Vec::new(),
            excluded: Vec::new(),
        };
    }
    let all: Vec<BigDecimal> = values.iter().map(|(_, r)| r.value().clone()).collect();
    let center = median(&all);
    let distances: Vec<BigDecimal> = all.iter().map(|v| (v - &center).abs()).collect();
    let mad = median(&distances);
    let limit = &center * BigDecimal::from(rules.max_deviation_bps) / BigDecimal::from(10_000);
    let floor = &center * BigDecimal::from(MAD_FLOOR_BPS) / BigDecimal::from(10_000);
    let scaled: BigDecimal = MAD_BOUND.parse().unwrap_or_else(|_| BigDecimal::from(5));
    let mad_bound = (&mad * scaled).max(floor);
    let median_rate = Rate::new(significant(center.clone())).ok();
    let mut used = Vec::new();
    let mut kept = Vec::new();
    let mut excluded = Vec::new();
    for ((source, rate), distance) in values.iter().zip(&distances) {
        let reason = if distance > &limit {
            Some(format!(
                "{} bps from the median {}, beyond max_deviation_bps {}",
                bps(distance, &center),
                significant(center.clone()),
                rules.max_deviation_bps
            ))
        } else if distance > &mad_bound && !mad.is_zero() {
            Some(format!(
                "{} bps from the median {}, beyond 3 scaled MADs ({} bps)",
                bps(distance, &center),
                significant(center.clone()),
                bps(&mad_bound, &center)
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => excluded.push(Excluded {
                source: source.clone(),
                rate: rate.clone(),
                median: median_rate.clone(),
                reason,
            }),
            None => {
                used.push(source.clone());
                kept.push(rate.value().clone());
            }
        }
    }
    used.sort();
    excluded.sort_by(|a, b| a.source.cmp(&b.source));
    let rate = if used.len() >= rules.quorum.max(1) {
        Rate::new(median(&kept)).ok()
    } else {
        None
    };
    Agreement {
        rate,
        used,
        excluded,
    }
}

/// The consensus of every currency quoted by any source: `quotes` holds each source's name and
/// its rates against the pivot.
pub fn agree_all(
    quotes: &[(String, &BTreeMap<CurrencyCode, Rate>)],
    rules: Rules,
) -> BTreeMap<CurrencyCode, Agreement> {
    let mut by_currency: BTreeMap<CurrencyCode, Vec<(String, Rate)>> = BTreeMap::new();
    for (source, rates) in quotes {
        for (code, rate) in rates.iter() {
            by_currency
                .entry(*code)
                .or_default()
                .push((source.clone(), rate.clone()));
        }
    }
    by_currency
        .into_iter()
        .map(|(code, values)| (code, agree(&values, rules)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::convert;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    fn values(list: &[(&str, &str)]) -> Vec<(String, Rate)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), rate(v)))
            .collect()
    }

    const RULES: Rules = Rules {
        max_deviation_bps: 100,
        quorum: 2,
    };

    #[test]
    fn a_scaled_and_an_inverted_source_are_excluded_and_the_rest_give_the_median() {
        // USD per EUR: three honest sources, one ×1.10, one inverted (EUR per USD).
        let got = agree(
            &values(&[
                ("a", "1.0823"),
                ("b", "1.0825"),
                ("c", "1.0821"),
                ("scaled", "1.19053"),
                ("inverted", "0.923958"),
            ]),
            RULES,
        );
        assert_eq!(got.rate, Some(rate("1.0823")));
        assert_eq!(got.used, ["a", "b", "c"]);
        assert_eq!(got.excluded.len(), 2);
        assert_eq!(got.excluded[0].source, "inverted");
        assert_eq!(
            got.excluded[0].reason,
            "1463.01 bps from the median 1.0823, beyond max_deviation_bps 100"
        );
        assert_eq!(got.excluded[1].source, "scaled");
        assert_eq!(got.excluded[1].rate, rate("1.19053"));
        assert_eq!(
            got.excluded[1].reason,
            "1000.00 bps from the median 1.0823, beyond max_deviation_bps 100"
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let got = agree(
            &values(&[
                ("a", "1.0820"),
                ("b", "1.0824"),
                ("c", "1.0822"),
                ("d", "1.0826"),
            ]),
            RULES,
        );
        assert_eq!(got.rate, Some(rate("1.0823")));
        assert!(got.excluded.is_empty());
    }

    #[test]
    fn a_value_within_the_bps_limit_but_far_beyond_the_others_spread_is_excluded_by_the_mad() {
        // Four sources agree within 0.2 bp; the fifth is 50 bps off: within 100 bps, but 3
        // scaled MADs of the others is about 1 bp.
        let got = agree(
            &values(&[
                ("a", "1.08230"),
                ("b", "1.08231"),
                ("c", "1.08229"),
                ("d", "1.08230"),
                ("e", "1.08771"),
            ]),
            RULES,
        );
        assert_eq!(got.rate, Some(rate("1.0823")));
        assert_eq!(got.used, ["a", "b", "c", "d"]);
        assert_eq!(got.excluded[0].source, "e");
        assert_eq!(
            got.excluded[0].reason,
            "49.99 bps from the median 1.0823, beyond 3 scaled MADs (1.00 bps)"
        );
    }

    #[test]
    fn two_disagreeing_sources_give_no_rate() {
        let got = agree(&values(&[("a", "1.0823"), ("liar", "1.19053")]), RULES);
        assert_eq!(got.rate, None);
        assert!(got.used.is_empty());
        assert_eq!(got.excluded.len(), 2);
    }

    #[test]
    fn one_agreeing_value_is_below_a_quorum_of_two() {
        let got = agree(&values(&[("a", "1.0823")]), RULES);
        assert_eq!(got.rate, None);
        assert_eq!(got.used, ["a"]);
        let single = agree(&values(&[("a", "1.0823")]), Rules { quorum: 1, ..RULES });
        assert_eq!(single.rate, Some(rate("1.0823")));
    }

    #[test]
    fn a_currency_one_source_omits_is_agreed_by_the_others() {
        let a: BTreeMap<CurrencyCode, Rate> = [
            ("USD".parse().unwrap(), rate("1.0823")),
            ("JPY".parse().unwrap(), rate("162.57")),
        ]
        .into();
        let b: BTreeMap<CurrencyCode, Rate> = [
            ("USD".parse().unwrap(), rate("1.0825")),
            ("JPY".parse().unwrap(), rate("162.59")),
        ]
        .into();
        let c: BTreeMap<CurrencyCode, Rate> = [("USD".parse().unwrap(), rate("1.0821"))].into();
        let all = agree_all(
            &[("a".into(), &a), ("b".into(), &b), ("c".into(), &c)],
            RULES,
        );
        let usd: CurrencyCode = "USD".parse().unwrap();
        let jpy: CurrencyCode = "JPY".parse().unwrap();
        assert_eq!(all[&usd].rate, Some(rate("1.0823")));
        assert_eq!(all[&jpy].rate, Some(rate("162.58")));
        assert_eq!(all[&jpy].used, ["a", "b"]);
    }

    use crate::test_cases::Cases;

    #[test]
    fn consensus_cross_rates_are_inverse_and_a_round_trip_never_returns_more() {
        // Five sources per currency, each honest value jittered by up to ±20 bps, one source
        // ×1.10 and one inverted; the consensus pivot rates then price every pair.
        let pivot: [(&str, &str, i64); 8] = [
            ("EUR", "1", 2),
            ("USD", "1.0823", 2),
            ("JPY", "162.57", 0),
            ("KWD", "0.33241", 3),
            ("HUF", "392.18", 2),
            ("GBP", "0.83945", 2),
            ("IDR", "17364.12", 2),
            ("CLF", "0.0358", 4),
        ];
        let mut cases = Cases(0xc0115e);
        let mut agreed: Vec<(&str, Rate, i64)> = vec![("EUR", rate("1"), 2)];
        for (code, honest, minor) in &pivot[1..] {
            let honest: BigDecimal = honest.parse().unwrap();
            let mut vals = Vec::new();
            for name in ["a", "b", "c"] {
                let jitter = BigDecimal::from(cases.next() % 41) - BigDecimal::from(20);
                let v = &honest * (BigDecimal::from(10_000) + jitter) / BigDecimal::from(10_000);
                vals.push((name.to_owned(), Rate::new(v).unwrap()));
            }
            let h = Rate::new(honest.clone()).unwrap();
            vals.push((
                "scaled".into(),
                Rate::new(&honest * "1.10".parse::<BigDecimal>().unwrap()).unwrap(),
            ));
            vals.push(("inverted".into(), h.inverse()));
            let got = agree(&vals, RULES);
            let excluded: Vec<&str> = got.excluded.iter().map(|e| e.source.as_str()).collect();
            assert!(excluded.contains(&"scaled"), "{code}: {excluded:?}");
            assert!(got.used.len() >= 2, "{code}: {:?}", got.used);
            agreed.push((code, got.rate.unwrap(), *minor));
        }
        let mut checked = 0;
        for _ in 0..10_000 {
            let a = &agreed[(cases.next() % agreed.len() as u64) as usize];
            let b = &agreed[(cases.next() % agreed.len() as u64) as usize];
            if a.0 == b.0 {
                continue;
            }
            let there = Rate::cross(&a.1, &b.1);
            let back = Rate::cross(&b.1, &a.1);
            let product = there.value() * back.value();
            assert!(
                (product - BigDecimal::from(1)).abs()
                    < "0.0000000000000001".parse::<BigDecimal>().unwrap(),
                "{}/{}",
                a.0,
                b.0
            );
            let units = cases.next() % 10_000_000_000;
            let amount = BigDecimal::new(units.into(), a.2) + BigDecimal::new(1.into(), a.2);
            let to: CurrencyCode = b.0.parse().unwrap();
            let from: CurrencyCode = a.0.parse().unwrap();
            let Ok(got) = convert(&amount, &there, to, b.2 as i16) else {
                continue;
            };
            let Ok(returned) = convert(&got, &back, from, a.2 as i16) else {
                continue;
            };
            assert!(returned <= amount, "{amount} {} → {got} → {returned}", a.0);
            checked += 1;
        }
        assert!(checked > 5_000, "only {checked} round trips were priced");
    }
}

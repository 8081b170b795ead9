//! `GET /convert`'s answer written from a [`Priced`]: byte for byte what serde writes for the
//! [`ConversionQuote`] made from it (the schema the OpenAPI document shows), faster.
//!
//! Of the answer's fifteen values only three depend on the amount: the amount, the result and
//! the markup amount. The other twelve (the pair, the rates, the provider, the sources, the
//! times, the markup) are the same for every amount of a partner's pair until rates change, and
//! serialising them was the largest cost left in a `GET /convert`. They are rendered once into
//! the text around the three holes, and kept per worker thread together with the values they
//! were rendered from. A request uses kept text only when every one of those values equals its
//! own, so kept text can never describe another price: there is nothing to invalidate.

use std::cell::RefCell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::pricing::Priced;
use super::service::RatesError;
use crate::currencies::CurrencyCode;
use crate::money::{self, Rate};

/// How many renderings a worker thread keeps: more than the pairs and markups one busy partner
/// prices at once; the oldest goes first.
const KEPT_PER_THREAD: usize = 64;

thread_local! {
    static KEPT: RefCell<Vec<Rc<Rendered>>> = const { RefCell::new(Vec::new()) };
}

/// The JSON of the [`ConversionQuote`] of `priced` (which has an amount).
pub fn conversion_quote(priced: &Priced) -> Result<Vec<u8>, RatesError> {
    let (amount, result) = priced.amount_and_result()?;
    let rendered = KEPT.with(|kept| -> Result<Rc<Rendered>, RatesError> {
        let mut kept = kept.borrow_mut();
        if let Some(found) = kept.iter().rev().find(|r| r.key.describes(priced)) {
            return Ok(found.clone());
        }
        let fresh = Rc::new(Rendered::of(priced)?);
        if kept.len() >= KEPT_PER_THREAD {
            kept.remove(0);
        }
        kept.push(fresh.clone());
        Ok(fresh)
    })?;
    // Plain decimals are digits, a point and a sign: nothing in them needs escaping.
    let markup = match &priced.markup_amount {
        Some(m) => format!("\"{}\"", money::plain(m)),
        None => "null".to_owned(),
    };
    let t = &rendered.text;
    Ok([
        t.head.as_str(),
        &money::plain(amount.value()),
        &t.after_amount,
        &money::plain(result),
        &t.after_result,
        &markup,
        &t.tail,
    ]
    .concat()
    .into_bytes())
}

/// The text of an answer around its three holes, and the values it was rendered from.
struct Rendered {
    key: Key,
    text: Text,
}

/// Every value of a [`Priced`] the kept text shows, other than the amount, the result and the
/// markup amount.
#[derive(PartialEq)]
struct Key {
    from: CurrencyCode,
    to: CurrencyCode,
    markup_bps: u32,
    lock_bps: u32,
    stale: bool,
    as_of: DateTime<Utc>,
    rate: Rate,
    reference_rate: Rate,
    provider: String,
    /// The reference's own list (empty for one provider's feed: see `rate_sources`).
    sources: Vec<String>,
}

impl Key {
    fn of(p: &Priced) -> Self {
        Self {
            from: p.from,
            to: p.to,
            markup_bps: p.markup_bps,
            lock_bps: p.lock_bps,
            stale: p.reference.stale,
            as_of: p.reference.as_of,
            rate: p.rate.clone(),
            reference_rate: p.reference.rate.clone(),
            provider: p.reference.provider.clone(),
            sources: p.reference.sources.clone(),
        }
    }

    /// Whether `p` has these values (the cheap comparisons first).
    fn describes(&self, p: &Priced) -> bool {
        self.from == p.from
            && self.to == p.to
            && self.markup_bps == p.markup_bps
            && self.lock_bps == p.lock_bps
            && self.stale == p.reference.stale
            && self.as_of == p.reference.as_of
            && self.rate == p.rate
            && self.reference_rate == p.reference.rate
            && self.provider == p.reference.provider
            && self.sources == p.reference.sources
    }
}

/// `head` amount `after_amount` result `after_result` markup-amount `tail`.
struct Text {
    head: String,
    after_amount: String,
    after_result: String,
    tail: String,
}

impl Rendered {
    /// Renders in [`ConversionQuote`]'s field order, each value with serde as the derived
    /// serialiser writes it.
    fn of(p: &Priced) -> Result<Self, RatesError> {
        fn json(value: &impl Serialize) -> Result<String, RatesError> {
            serde_json::to_string(value).map_err(|e| RatesError::Unexpected(e.into()))
        }
        let sources = json(&p.reference.rate_sources())?;
        let provider = json(&p.reference.provider)?;
        let as_of = json(&p.reference.as_of)?;
        let rate = json(&p.rate)?;
        let text = Text {
            head: format!(
                r#"{{"from":{},"to":{},"amount":""#,
                json(&p.from)?,
                json(&p.to)?
            ),
            after_amount: format!(r#"","rate":{rate},"result":""#),
            after_result: format!(
                r#"","rate_as_of":{as_of},"rate_provider":{provider},"rate_sources":{sources},"stale_rate":{},"rate_details":{{"reference_rate":{},"markup_bps":{},"lock_bps":{},"rate":{rate},"markup_amount":"#,
                json(&p.reference.stale)?,
                json(&p.reference.rate)?,
                json(&p.markup_bps)?,
                json(&p.lock_bps)?,
            ),
            tail: format!(
                r#","provider":{provider},"sources":{sources},"reference_as_of":{as_of}}}}}"#
            ),
        };
        Ok(Self {
            key: Key::of(p),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Amount, Bounds, RequestedAmount};
    use crate::rates::pricing::ConversionQuote;
    use crate::rates::service::RateQuote;
    use bigdecimal::BigDecimal;
    use std::str::FromStr;

    fn code(c: &str) -> CurrencyCode {
        CurrencyCode::parse(c).unwrap()
    }

    /// A price of `amount` on `pair` at `reference` less `markup_bps`, from `feed` (the
    /// provider and its sources).
    fn priced(
        pair: (&str, &str),
        reference: &str,
        markup_bps: u32,
        amount: &str,
        stale: bool,
        feed: (&str, &[&str]),
    ) -> Priced {
        let ((from, to), (provider, sources)) = ((code(pair.0), code(pair.1)), feed);
        let reference = Rate::parse(reference).unwrap();
        let rate = reference.with_spread(markup_bps).unwrap();
        let amount = Amount::of(
            &RequestedAmount::parse(amount).unwrap(),
            from,
            2,
            &Bounds::up_to(BigDecimal::from_str("1000000000").unwrap()),
        )
        .unwrap();
        let result = money::convert(amount.value(), &rate, to, 2).unwrap();
        let markup_amount = money::markup_amount(amount.value(), &reference, &result, 2);
        Priced {
            from,
            to,
            from_minor_units: 2,
            to_minor_units: 2,
            reference: RateQuote {
                from,
                to,
                rate: reference,
                as_of: DateTime::parse_from_rfc3339("2026-10-30T15:00:00.25Z")
                    .unwrap()
                    .to_utc(),
                fetched_at: Utc::now(),
                provider: provider.into(),
                stale,
                from_quote_id: Some(1),
                to_quote_id: None,
                sources: sources.iter().map(|s| s.to_string()).collect(),
                degraded: None,
            },
            markup_bps,
            lock_bps: 0,
            spread_bps: markup_bps,
            rate,
            amount: Some(amount),
            result: Some(result),
            markup_amount: Some(markup_amount),
        }
    }

    fn serde_text(p: &Priced) -> String {
        serde_json::to_string(&ConversionQuote::try_from(p.clone()).unwrap()).unwrap()
    }

    #[test]
    fn the_answer_is_what_serde_writes_for_the_quote_kept_or_not() {
        let mut cases = Vec::new();
        for amount in ["1", "1.5", "100.00", "12345.67", "999999999.99"] {
            for markup in [0, 1, 35, 2_500] {
                for (reference, stale) in [("210.698009114895658", true), ("1.0061", false)] {
                    cases.push(priced(
                        ("GBP", "JPY"),
                        reference,
                        markup,
                        amount,
                        stale,
                        ("seed", &[]),
                    ));
                }
            }
        }
        cases.push(priced(
            ("EUR", "USD"),
            "1.1",
            20,
            "5",
            false,
            (
                "consensus \"feed\"\n",
                &["ecb", "frankfurter", "o\u{e9}x\\r"],
            ),
        ));
        // Twice over: the first pass renders, the second uses what was kept, and each answer
        // must be its own price's.
        for _ in 0..2 {
            for p in &cases {
                let ours = String::from_utf8(conversion_quote(p).unwrap()).unwrap();
                assert_eq!(ours, serde_text(p));
            }
        }
    }

    #[test]
    fn kept_text_is_never_used_for_a_price_that_differs_in_any_value_it_shows() {
        let base = priced(("GBP", "JPY"), "210.5", 10, "100", false, ("seed", &[]));
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.to = code("CHF");
        variants.push(v);
        let mut v = base.clone();
        v.from = code("EUR");
        variants.push(v);
        let mut v = base.clone();
        v.markup_bps = 11;
        variants.push(v);
        let mut v = base.clone();
        v.lock_bps = 5;
        variants.push(v);
        let mut v = base.clone();
        v.reference.stale = true;
        variants.push(v);
        let mut v = base.clone();
        v.reference.as_of += chrono::TimeDelta::seconds(1);
        variants.push(v);
        let mut v = base.clone();
        v.rate = Rate::parse("210.4").unwrap();
        variants.push(v);
        let mut v = base.clone();
        v.reference.rate = Rate::parse("210.6").unwrap();
        variants.push(v);
        let mut v = base.clone();
        v.reference.provider = "ecb".into();
        variants.push(v);
        let mut v = base.clone();
        v.reference.sources = vec!["ecb".into()];
        variants.push(v);
        for _ in 0..2 {
            for p in &variants {
                let ours = String::from_utf8(conversion_quote(p).unwrap()).unwrap();
                assert_eq!(ours, serde_text(p));
            }
        }
    }
}

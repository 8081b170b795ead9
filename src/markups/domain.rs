//! What a markup schedule is: a default markup and per-pair overrides, in basis points below the
//! reference rate; how it is written in requests (`"USD/JPY"`), and its errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::currency_code::CurrencyCode;
use crate::error::ApiError;

/// A partner's markups: `markup_bps` for every pair, unless `pairs` names the pair (from → to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkupSchedule {
    /// Basis points below the reference rate for a pair without an override.
    pub markup_bps: u32,
    /// Overrides per direction: USD→JPY is not JPY→USD.
    pub pairs: BTreeMap<(CurrencyCode, CurrencyCode), u32>,
    /// Whether the partner has a schedule of its own (`false`: the settings' default).
    pub own: bool,
}

impl MarkupSchedule {
    /// The schedule of a partner without one: `pricing.default_markup_bps` for every pair.
    pub fn default_of(markup_bps: u32) -> Self {
        Self {
            markup_bps,
            pairs: BTreeMap::new(),
            own: false,
        }
    }

    /// The markup of converting `from` into `to`.
    pub fn for_pair(&self, from: CurrencyCode, to: CurrencyCode) -> u32 {
        self.pairs
            .get(&(from, to))
            .copied()
            .unwrap_or(self.markup_bps)
    }

    /// How the API writes it.
    pub fn as_json(&self) -> serde_json::Value {
        serde_json::json!({
            "markup_bps": self.markup_bps,
            "pairs": self.pairs.iter().map(|((f, t), b)| (format!("{f}/{t}"), *b)).collect::<BTreeMap<_, _>>(),
        })
    }
}

/// `PUT /partners/{id}/pricing`: the whole schedule, replacing the previous one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingRequest {
    /// Basis points (1 bp = 0.01 %) below the reference rate for every pair without an override.
    #[schema(example = 25, minimum = 0, maximum = 9999)]
    pub markup_bps: u32,
    /// Per-pair markups, keyed `FROM/TO` (one direction): `{"USD/JPY": 40}`.
    #[serde(default)]
    #[schema(example = json!({"USD/JPY": 40}))]
    pub pairs: BTreeMap<String, u32>,
}

impl PricingRequest {
    /// The schedule this request sets, or why it cannot: a pair that is not `FROM/TO` with two
    /// distinct currency codes, or a markup above `max_bps`.
    pub fn parse(self, max_bps: u32) -> Result<MarkupSchedule, MarkupsError> {
        let check = |field: String, bps: u32| {
            if bps > max_bps {
                Err(MarkupsError::Invalid {
                    field,
                    message: format!(
                        "at most {max_bps} basis points (with the dearest lock's spread a rate must stay positive)"
                    ),
                })
            } else {
                Ok(bps)
            }
        };
        let markup_bps = check("markup_bps".into(), self.markup_bps)?;
        let mut pairs = BTreeMap::new();
        for (raw, bps) in self.pairs {
            let field = format!("pairs.{raw}");
            let parsed = raw
                .split_once('/')
                .and_then(|(f, t)| {
                    Some((CurrencyCode::parse(f).ok()?, CurrencyCode::parse(t).ok()?))
                })
                .filter(|(f, t)| f != t)
                .ok_or_else(|| MarkupsError::Invalid {
                    field: field.clone(),
                    message:
                        "a pair is written FROM/TO with two different currency codes, e.g. USD/JPY"
                            .into(),
                })?;
            let bps = check(field.clone(), bps)?;
            if pairs.insert(parsed, bps).is_some() {
                return Err(MarkupsError::Invalid {
                    field,
                    message: "this pair is listed twice".into(),
                });
            }
        }
        Ok(MarkupSchedule {
            markup_bps,
            pairs,
            own: true,
        })
    }
}

/// A partner's pricing as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PricingView {
    pub partner_id: Uuid,
    /// Basis points below the reference rate for every pair without an override.
    pub markup_bps: u32,
    /// Per-pair markups, keyed `FROM/TO`.
    pub pairs: BTreeMap<String, u32>,
    /// `partner`: set for this partner; `default`: `pricing.default_markup_bps` applies.
    #[schema(example = "partner")]
    pub source: &'static str,
    pub updated_at: Option<DateTime<Utc>>,
    /// The admin who made the last change.
    pub updated_by: Option<Uuid>,
}

impl PricingView {
    pub fn new(
        partner_id: Uuid,
        schedule: &MarkupSchedule,
        updated: Option<(DateTime<Utc>, Uuid)>,
    ) -> Self {
        Self {
            partner_id,
            markup_bps: schedule.markup_bps,
            pairs: schedule
                .pairs
                .iter()
                .map(|((f, t), b)| (format!("{f}/{t}"), *b))
                .collect(),
            source: if schedule.own { "partner" } else { "default" },
            updated_at: updated.map(|u| u.0),
            updated_by: updated.map(|u| u.1),
        }
    }
}

/// One change of a partner's pricing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PricingChange {
    pub id: i64,
    pub partner_id: Uuid,
    pub changed_by: Uuid,
    pub changed_at: DateTime<Utc>,
    /// The schedule before (`null`: the default applied).
    #[schema(value_type = Option<Object>)]
    pub previous: Option<serde_json::Value>,
    /// The schedule set.
    #[schema(value_type = Object)]
    pub current: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum MarkupsError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("no such partner")]
    PartnerNotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for MarkupsError {
    fn from(e: sqlx::Error) -> Self {
        MarkupsError::Unexpected(e.into())
    }
}

impl From<MarkupsError> for ApiError {
    fn from(e: MarkupsError) -> Self {
        match e {
            MarkupsError::Invalid { field, message } => ApiError::validation(&field, message),
            MarkupsError::PartnerNotFound => ApiError::NotFound("no such partner".into()),
            MarkupsError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).unwrap()
    }

    #[test]
    fn a_pair_override_wins_in_its_direction_only() {
        let request = PricingRequest {
            markup_bps: 25,
            pairs: [("USD/JPY".to_owned(), 40)].into(),
        };
        let schedule = request.parse(9949).unwrap();
        assert_eq!(schedule.for_pair(code("USD"), code("JPY")), 40);
        assert_eq!(schedule.for_pair(code("JPY"), code("USD")), 25);
        assert_eq!(schedule.for_pair(code("EUR"), code("GBP")), 25);
    }

    #[test]
    fn bad_pairs_and_markups_name_their_field() {
        for (pairs, field) in [
            (vec![("USDJPY", 1)], "pairs.USDJPY"),
            (vec![("USD/USD", 1)], "pairs.USD/USD"),
            (vec![("USD/J1Y", 1)], "pairs.USD/J1Y"),
            (vec![("USD/JPY", 9950)], "pairs.USD/JPY"),
            (vec![("usd/jpy", 1), ("USD/JPY", 2)], "pairs.usd/jpy"),
        ] {
            let request = PricingRequest {
                markup_bps: 0,
                pairs: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            };
            match request.parse(9949) {
                Err(MarkupsError::Invalid { field: f, .. }) => {
                    assert!(f.starts_with("pairs."), "{field}: {f}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let too_much = PricingRequest {
            markup_bps: 9950,
            pairs: BTreeMap::new(),
        };
        assert!(
            matches!(too_much.parse(9949), Err(MarkupsError::Invalid { field, .. }) if field == "markup_bps")
        );
    }
}

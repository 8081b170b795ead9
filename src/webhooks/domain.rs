//! Event types and endpoint URLs, parsed at the boundary.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// What happened. Stored as text in `webhook_events.event_type` and `webhook_endpoints.events`
/// (CHECK constraints list the values); a value this enum does not know fails to decode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema, sqlx::Type,
)]
#[sqlx(type_name = "text")]
pub enum EventType {
    /// A conversion was made (one event per conversion of a batch too).
    #[serde(rename = "conversion.created")]
    #[sqlx(rename = "conversion.created")]
    ConversionCreated,
    /// A conversion became permanent at the end of its holding period.
    #[serde(rename = "conversion.finalized")]
    #[sqlx(rename = "conversion.finalized")]
    ConversionFinalized,
    /// The partner cancelled a temporary conversion.
    #[serde(rename = "conversion.cancelled")]
    #[sqlx(rename = "conversion.cancelled")]
    ConversionCancelled,
    /// A quote's rate lock ended (quotes with a lock only).
    #[serde(rename = "quote.expired")]
    #[sqlx(rename = "quote.expired")]
    QuoteExpired,
    /// A currency's rates sources fell below the quorum (`rates.sources`): nothing is priced
    /// on it until they agree again. Sent to every partner subscribed, once per change.
    #[serde(rename = "rates.degraded")]
    #[sqlx(rename = "rates.degraded")]
    RatesDegraded,
    /// A degraded currency's sources agree again: it is priced on its new consensus.
    #[serde(rename = "rates.recovered")]
    #[sqlx(rename = "rates.recovered")]
    RatesRecovered,
    /// Sent by `POST /webhooks/{id}/test`; cannot be subscribed to.
    #[serde(rename = "ping")]
    #[sqlx(rename = "ping")]
    Ping,
}

impl EventType {
    /// The types an endpoint may subscribe to.
    pub const SUBSCRIBABLE: [EventType; 6] = [
        EventType::ConversionCreated,
        EventType::ConversionFinalized,
        EventType::ConversionCancelled,
        EventType::QuoteExpired,
        EventType::RatesDegraded,
        EventType::RatesRecovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversionCreated => "conversion.created",
            EventType::ConversionFinalized => "conversion.finalized",
            EventType::ConversionCancelled => "conversion.cancelled",
            EventType::QuoteExpired => "quote.expired",
            EventType::RatesDegraded => "rates.degraded",
            EventType::RatesRecovered => "rates.recovered",
            EventType::Ping => "ping",
        }
    }

    /// A subscribable type by name.
    pub fn parse_subscribable(s: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a delivery.
// Stored as text in `webhook_deliveries.state` (a CHECK constraint lists the values); a value
// this enum does not know fails to decode rather than reading as pending. (A plain comment, so
// that it stays out of the OpenAPI description.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet; `next_attempt_at` says when it is tried.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed (or the endpoint was deleted); `POST …/retry` starts again.
    Dead,
}

/// The event types an endpoint subscribes to, parsed from the partner's list: at least one,
/// each subscribable (never `ping`), each once, in [`EventType`] order. A request carries it
/// already parsed: an unknown name is refused while the body is read, as a 422 naming `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubscription(Vec<EventType>);

impl EventSubscription {
    /// Parses a partner's event list; duplicates collapse.
    pub fn parse(raw: &[String]) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("list at least one event type".into());
        }
        let mut events = Vec::new();
        for name in raw {
            let t = EventType::parse_subscribable(name).ok_or_else(|| {
                format!(
                    "`{name}` is not an event type; use {}",
                    EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                )
            })?;
            if !events.contains(&t) {
                events.push(t);
            }
        }
        events.sort();
        Ok(Self(events))
    }

    /// The event types, each once, in [`EventType`] order.
    pub fn events(&self) -> &[EventType] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EventSubscription {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The OpenAPI schema of one name in an [`EventSubscription`]: the names of
/// [`EventType::SUBSCRIBABLE`], so the document lists exactly what parsing accepts.
pub struct SubscribableEvent;

impl utoipa::PartialSchema for SubscribableEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventType::SUBSCRIBABLE.map(EventType::as_str)))
            .description(Some(
                "An event type an endpoint may subscribe to (`ping` is sent by \
                 `POST /webhooks/{id}/test` only).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for SubscribableEvent {}

/// An endpoint URL whose form is acceptable: `https` (or `http` where allowed), a host, no
/// credentials, no fragment. Whether its addresses may be called is [`super::guard`]'s question.
#[derive(Debug, Clone)]
pub struct EndpointUrl(reqwest::Url);

/// A webhook target as a partner writes it, read where the request is read: an absolute http(s)
/// URL of at most 2048 characters that names a host, without credentials or a fragment. Whether
/// plain http is allowed is the deployment's setting (`webhooks.allow_http`), and whether the host
/// is public is the SSRF guard's question (it may resolve the name): both are asked when the
/// endpoint is registered, by [`EndpointUrl::allowing`] and `service::check_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > 2048 {
            return Err("at most 2048 characters".into());
        }
        let url = reqwest::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "https" | "http" => {}
            other => return Err(format!("scheme `{other}` is not allowed; use https")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        Ok(Self(url))
    }
}

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl EndpointUrl {
    /// `url` as a target of this deployment: https, or plain http where `allow_http` says so.
    pub fn allowing(url: WebhookUrl, allow_http: bool) -> Result<Self, String> {
        if url.0.scheme() == "http" && !allow_http {
            return Err("must be https (plain http is refused here)".into());
        }
        Ok(Self(url.0))
    }

    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, String> {
        Self::allowing(WebhookUrl::parse(raw)?, allow_http)
    }

    pub fn as_url(&self) -> &reqwest::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written (an IPv6 literal in brackets).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The IP address when the host is an IP literal.
    pub fn ip_literal(&self) -> Option<std::net::IpAddr> {
        let host = self.host();
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_collapse() {
        let raw = vec![
            "quote.expired".to_owned(),
            "conversion.created".to_owned(),
            "quote.expired".to_owned(),
        ];
        assert_eq!(
            EventSubscription::parse(&raw).unwrap().events(),
            [EventType::ConversionCreated, EventType::QuoteExpired]
        );
        assert!(EventSubscription::parse(&[]).is_err());
        assert!(EventSubscription::parse(&["ping".to_owned()]).is_err());
    }

    #[test]
    fn a_subscription_deserialises_from_the_names_or_says_which_name_is_wrong() {
        let parsed: EventSubscription =
            serde_json::from_value(serde_json::json!(["conversion.cancelled"])).unwrap();
        assert_eq!(parsed.events(), [EventType::ConversionCancelled]);
        let err = serde_json::from_value::<EventSubscription>(serde_json::json!(["ping"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`ping` is not an event type; use conversion.created"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_names_are_the_subscribable_ones() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(SubscribableEvent::schema()).unwrap();
        let names: Vec<EventType> = EventType::SUBSCRIBABLE.to_vec();
        let documented: Vec<String> = serde_json::from_value(schema["enum"].clone()).unwrap();
        assert_eq!(
            documented,
            names.iter().map(|t| t.as_str()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn urls_need_https_a_host_and_no_credentials() {
        assert!(EndpointUrl::parse("https://example.com/hook", false).is_ok());
        assert!(EndpointUrl::parse("http://example.com/hook", false).is_err());
        assert!(EndpointUrl::parse("http://example.com/hook", true).is_ok());
        assert!(EndpointUrl::parse("ftp://example.com/", true).is_err());
        assert!(EndpointUrl::parse("https://user:pw@example.com/", false).is_err());
        assert!(EndpointUrl::parse("not a url", false).is_err());
        let url = EndpointUrl::parse("https://[::1]:8443/x", false).unwrap();
        assert_eq!(url.ip_literal(), Some("::1".parse().unwrap()));
    }
}

//! Request extractors that parse into typed requests and, when a value does not parse, name the
//! field it came from: `Query<T>`, `Json<T>` and `OptionalJson<T>` in place of actix's own.
//!
//! Request types hold real types (`CurrencyCode`, enums, `DateTime`, bounded integers) rather
//! than strings checked later in the handler, so the error a client gets comes from
//! deserialisation. serde's errors do not say which field they are about; `serde_path_to_error`
//! tracks the path, and the answer is the usual `422 /problems/validation-failed` with `errors`
//! naming it (`items[0].to`, `status`). Content type, size and syntax stay actix's
//! `JsonConfig` checks (415, 413, 400: see [`crate::error::json_error`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A typed query string; a parameter that does not parse is a 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> Query<T> {
    /// Parses a raw query string (without the `?`). A query that parses is read once, without
    /// tracking paths (a few percent of a `GET /convert`); only one that does not is read again
    /// with `serde_path_to_error`, to name the parameter in the problem.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        if let Ok(parsed) = serde_urlencoded::from_str::<T>(query) {
            return Ok(Query(parsed));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let field = e.path().to_string();
                let message = e.inner().to_string();
                let value = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| *k == field)
                    .map(|(_, v)| v.into_owned());
                query_problem(&field, &message, value.as_deref())
            })
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::from_query(req.query_string()))
    }
}

/// The problem for a query parameter that does not parse. Our own types (`CurrencyCode`, enums)
/// say what they expected; the standard parsers (integers, instants, UUIDs, booleans) do not, so
/// for those the parameter's format is named, with the value given.
fn query_problem(field: &str, message: &str, value: Option<&str>) -> ApiError {
    // A missing parameter is reported at the root; serde's message names it.
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return ApiError::validation(name, "is required");
    }
    let field = if field == "." || field.is_empty() {
        "query"
    } else {
        field
    };
    let ours = message.starts_with('`') || message.starts_with("unknown variant");
    let message = match (ours, value, crate::error::query_format(field)) {
        (false, Some(value), Some(format)) => format!("expected {format}, got {value:?}"),
        _ => message.to_owned(),
    };
    ApiError::validation(field, message)
}

/// A typed JSON body (an object: see [`crate::middleware::Pipeline`]); a field that does
/// not parse is a 422 naming it by its path.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// Reads `value` as a `T`, naming the field that does not fit.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ApiError> {
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| {
                let path = e.path().to_string();
                let (field, message) = json_field(&path, &e.inner().to_string());
                ApiError::Validation {
                    detail: format!("{field}: {message}"),
                    errors: vec![FieldError::new(field, message)],
                }
            })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            Ok(Self::from_value(value)?)
        })
    }
}

/// An optional JSON body: none when the request has no `Content-Type` (no body was sent);
/// otherwise exactly like [`Json`], so a body of the wrong shape is a 422, not silently ignored.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Box::pin(std::future::ready(Ok(OptionalJson(None))));
        }
        let body = Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJson(Some(body.await?.0))) })
    }
}

/// Reads an optional whole number that JSON may write as `3` or `3.0` (JSON Schema's `integer`
/// admits both), refusing a fraction and anything out of `T`'s range.
pub fn opt_whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            // Checked just above: a whole number well inside i64.
            .map(|f| f as i64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("`{number}` is not a whole number in range"))
        })
}

/// The field a JSON data error is about, and what is wrong with it. `path` is where the error
/// arose (`.` for the body itself, `items[0]` for an item); a missing or unknown field is named
/// in serde's message, and our field deserialisers (e.g. `money::amount_as_text`) start their
/// message with the field's name, which the path already says.
fn json_field(path: &str, message: &str) -> (String, String) {
    let join = |name: &str| match path {
        "." | "" => name.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    for (prefix, says) in [
        ("missing field `", "is required"),
        ("unknown field `", "is not a field of this request"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, _)) = rest.split_once('`')
        {
            // serde_path_to_error puts an unknown field in the path already.
            let field = if path == name || path.ends_with(&format!(".{name}")) {
                path.to_owned()
            } else {
                join(name)
            };
            return (field, says.to_owned());
        }
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    let message = message
        .strip_prefix(&format!("{last}: "))
        .unwrap_or(message)
        .to_owned();
    match path {
        "." | "" => (
            "body".to_owned(),
            format!("does not have the expected shape: {message}"),
        ),
        _ => (path.to_owned(), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency_code::CurrencyCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        to: CurrencyCode,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        items: Vec<Item>,
    }

    fn field_of(err: ApiError) -> (String, String) {
        match err {
            ApiError::Validation { errors, .. } => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_bad_nested_field_is_named_by_its_path() {
        let err =
            Json::<Body>::from_value(serde_json::json!({"items": [{"to": "USD"}, {"to": "X"}]}))
                .unwrap_err();
        let (field, message) = field_of(err);
        assert_eq!(field, "items[1].to");
        assert!(message.contains("not a currency code"), "{message}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let err = Json::<Body>::from_value(serde_json::json!({"items": [{}]})).unwrap_err();
        assert_eq!(field_of(err), ("items[0].to".into(), "is required".into()));
        let err = Json::<Body>::from_value(serde_json::json!({"items": [], "x": 1})).unwrap_err();
        assert_eq!(
            field_of(err),
            ("x".into(), "is not a field of this request".into())
        );
        let err = Json::<Body>::from_value(serde_json::json!({})).unwrap_err();
        assert_eq!(field_of(err), ("items".into(), "is required".into()));
    }

    #[derive(Debug, Deserialize)]
    struct Params {
        #[allow(dead_code)]
        base: Option<CurrencyCode>,
        #[allow(dead_code)]
        limit: Option<u32>,
        #[allow(dead_code)]
        from: CurrencyCode,
    }

    #[test]
    fn a_query_parameter_that_does_not_parse_is_named_with_its_format() {
        let err = Query::<Params>::from_query("from=USD&base=US").unwrap_err();
        let (field, message) = field_of(err);
        assert_eq!(field, "base");
        assert!(message.contains("not a currency code"), "{message}");
        let err = Query::<Params>::from_query("from=USD&limit=many").unwrap_err();
        assert_eq!(
            field_of(err),
            (
                "limit".into(),
                "expected a whole number such as 50, got \"many\"".into()
            )
        );
        let err = Query::<Params>::from_query("limit=5").unwrap_err();
        assert_eq!(field_of(err), ("from".into(), "is required".into()));
        assert!(Query::<Params>::from_query("from=usd").is_ok());
    }
}

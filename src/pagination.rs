//! The list convention every module follows: `?limit=&cursor=` in, `{"data": [...],
//! "next_cursor": ...}` out. Cursors are opaque to clients (hex of `timestamp|id`), and keyset
//! based, so pages stay stable while rows are added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<PageLimit>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
}

impl PageParams {
    /// The limit (default [`DEFAULT_LIMIT`]) and the position to start after.
    pub fn limit_and_cursor(&self) -> (i64, Option<Cursor>) {
        (self.limit.unwrap_or_default().get(), self.cursor)
    }
}

/// Items per page: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    pub fn new(n: u32) -> Result<Self, String> {
        if n == 0 || n > MAX_LIMIT {
            return Err(format!(
                "`{n}` is out of range: a page holds 1 to {MAX_LIMIT} items"
            ));
        }
        Ok(Self(n))
    }

    /// As the `LIMIT` of a query (which fetches one row more to learn whether there is more).
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

impl<'de> Deserialize<'de> for PageLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A position in a list ordered by `(timestamp DESC, id DESC)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// Text that is not a cursor this API handed out.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a cursor returned by this API")]
pub struct NotACursor(String);

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!("{}|{}", self.at.to_rfc3339(), self.id))
    }

    pub fn decode(s: &str) -> Result<Self, NotACursor> {
        let bad = || NotACursor(s.chars().take(40).collect());
        let bytes = hex::decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (at, id) = text.split_once('|').ok_or_else(bad)?;
        Ok(Self {
            at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows (the extra row only says there is more).
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| key(r).encode())
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_validation_error() {
        let c = Cursor {
            at: Utc::now(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&hex::encode("nope")).is_err());
    }

    #[test]
    fn a_limit_outside_one_to_two_hundred_or_a_foreign_cursor_names_its_parameter() {
        use crate::extract::Query;
        let problem = |q: &str| match Query::<PageParams>::from_query(q).unwrap_err() {
            crate::error::ApiError::Validation { errors, .. } => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("not a validation error: {other}"),
        };
        assert_eq!(problem("limit=0").0, "limit");
        assert!(
            problem("limit=201").1.contains("1 to 200"),
            "{:?}",
            problem("limit=201")
        );
        assert!(
            problem("limit=ten").1.contains("whole number"),
            "{:?}",
            problem("limit=ten")
        );
        assert_eq!(
            problem("cursor=zz"),
            (
                "cursor".into(),
                "`zz` is not a cursor returned by this API".into()
            )
        );
        let ok = Query::<PageParams>::from_query("limit=200").unwrap();
        assert_eq!(ok.limit_and_cursor(), (200, None));
        let none = Query::<PageParams>::from_query("").unwrap();
        assert_eq!(none.limit_and_cursor(), (i64::from(DEFAULT_LIMIT), None));
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_exist() {
        let key = |n: &i64| Cursor {
            at: DateTime::from_timestamp(*n, 0).unwrap(),
            id: Uuid::nil(),
        };
        let page = Page::from_rows(vec![3, 2, 1], 2, key);
        assert_eq!(page.data, vec![3, 2]);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_deref().unwrap()).unwrap(),
            key(&2)
        );
        let last = Page::from_rows(vec![1], 2, key);
        assert!(last.next_cursor.is_none());
    }
}

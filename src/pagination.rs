//! The list convention every module follows: `?limit=&cursor=` in, `{"data": [...],
//! "next_cursor": ...}` out. Cursors are opaque to clients (hex of `timestamp|id`), and keyset
//! based, so pages stay stable while rows are added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A position in a list ordered by `(timestamp DESC, id DESC)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!("{}|{}", self.at.to_rfc3339(), self.id))
    }

    pub fn decode(s: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::validation("cursor", "is not a cursor returned by this API");
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

impl PageParams {
    /// The validated limit and decoded cursor.
    pub fn parse(&self) -> Result<(i64, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::validation(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let cursor = self.cursor.as_deref().map(Cursor::decode).transpose()?;
        Ok((i64::from(limit), cursor))
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

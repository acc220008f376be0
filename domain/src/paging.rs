//! Page requests and page envelopes shared by the list operations.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// A validated page size: 1 ..= [`Limit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Limit(u32);

impl Limit {
    /// The largest page any list operation returns in one call.
    pub const MAX: u32 = 10_000;

    /// Parses a page size.
    pub fn new(n: u32) -> DomainResult<Self> {
        if n == 0 {
            return Err(DomainError::invalid("limit", "must be at least 1"));
        }
        if n > Self::MAX {
            return Err(DomainError::invalid(
                "limit",
                format!("is {n}; at most {} rows are returned per page", Self::MAX),
            ));
        }
        Ok(Self(n))
    }

    /// The size as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The size as a `usize`.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl TryFrom<u32> for Limit {
    type Error = DomainError;
    fn try_from(n: u32) -> DomainResult<Self> {
        Self::new(n)
    }
}

impl From<Limit> for u32 {
    fn from(l: Limit) -> u32 {
        l.0
    }
}

/// Offset paging for lists ordered by something other than a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetPage {
    /// How many rows at most.
    pub limit: Limit,
    /// How many rows to skip first.
    pub offset: u64,
}

impl OffsetPage {
    /// `limit` rows after skipping `offset`.
    pub fn new(limit: u32, offset: u64) -> DomainResult<Self> {
        Ok(Self {
            limit: Limit::new(limit)?,
            offset,
        })
    }

    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> DomainResult<Self> {
        Self::new(limit, 0)
    }
}

/// A page of results that says whether more exist, so nothing is ever silently cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// True when rows beyond this page exist.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only proves `has_more`.
    pub fn from_look_ahead(mut rows: Vec<T>, limit: Limit) -> Self {
        let has_more = rows.len() > limit.as_usize();
        rows.truncate(limit.as_usize());
        Self {
            items: rows,
            has_more,
        }
    }
}

/// Which slice of a sequence-numbered stream to read (spec §1.4). Rows always come back in
/// ascending sequence order; "no cursor" is `Latest`, never "everything".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeqPage {
    /// The `n` rows with the greatest sequence numbers.
    Latest(Limit),
    /// The `n` greatest sequence numbers strictly below the cursor.
    Before(i64, Limit),
    /// The `n` smallest sequence numbers strictly above the cursor.
    After(i64, Limit),
}

impl SeqPage {
    /// The default message page: the newest 50.
    pub fn default_latest() -> Self {
        Self::Latest(Limit(50))
    }

    /// Builds a page from optional cursors as an HTTP layer receives them; both cursors at
    /// once are refused.
    pub fn from_cursors(before: Option<i64>, after: Option<i64>, limit: u32) -> DomainResult<Self> {
        let limit = Limit::new(limit)?;
        match (before, after) {
            (Some(_), Some(_)) => Err(DomainError::invalid(
                "cursor",
                "give either before_seq or after_seq, not both",
            )),
            (Some(b), None) => Ok(Self::Before(b, limit)),
            (None, Some(a)) => Ok(Self::After(a, limit)),
            (None, None) => Ok(Self::Latest(limit)),
        }
    }

    /// The page size.
    pub fn limit(&self) -> Limit {
        match *self {
            Self::Latest(l) | Self::Before(_, l) | Self::After(_, l) => l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert!(Limit::new(0).is_err());
        assert_eq!(Limit::new(1).unwrap().get(), 1);
        assert!(Limit::new(Limit::MAX).is_ok());
        assert!(Limit::new(Limit::MAX + 1).is_err());
    }

    #[test]
    fn look_ahead_row_sets_has_more_and_is_dropped() {
        let l = Limit::new(2).unwrap();
        let p = Page::from_look_ahead(vec![1, 2, 3], l);
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.has_more);
        let p = Page::from_look_ahead(vec![1, 2], l);
        assert!(!p.has_more);
    }

    #[test]
    fn both_cursors_are_refused() {
        assert!(
            SeqPage::from_cursors(Some(5), Some(1), 10)
                .unwrap_err()
                .is_invalid_input()
        );
        assert_eq!(
            SeqPage::from_cursors(None, None, 3).unwrap(),
            SeqPage::Latest(Limit::new(3).unwrap())
        );
        assert_eq!(SeqPage::default_latest().limit().get(), 50);
    }
}

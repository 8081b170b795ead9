//! A per-process memo of "this access token belongs to an enabled user and was not logged out",
//! so the hot path does not pay a Redis round trip on every request.
//!
//! Entries live [`STATUS_MEMO_TTL`]. A change made through this process (disable, enable,
//! logout) drops the user's entries at once; other instances see it within the TTL, on top of
//! the Redis-backed check behind it (which itself is invalidated at once on every change).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a positive check is trusted without asking Redis again.
pub const STATUS_MEMO_TTL: Duration = Duration::from_millis(1000);

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct StatusMemo {
    /// (user, token id) → when the token was last found valid.
    checked: RwLock<HashMap<(Uuid, Uuid), Instant>>,
}

impl std::fmt::Debug for StatusMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusMemo").finish_non_exhaustive()
    }
}

impl StatusMemo {
    pub fn is_fresh(&self, user: Uuid, jti: Uuid) -> bool {
        let map = self.checked.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(user, jti))
            .is_some_and(|at| at.elapsed() < STATUS_MEMO_TTL)
    }

    pub fn remember(&self, user: Uuid, jti: Uuid) {
        let mut map = self.checked.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, at| at.elapsed() < STATUS_MEMO_TTL);
        }
        map.insert((user, jti), Instant::now());
    }

    /// Forgets every token of `user` (it was disabled, enabled or logged out here).
    pub fn forget_user(&self, user: Uuid) {
        let mut map = self.checked.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|(u, _), _| *u != user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_fresh_until_forgotten() {
        let memo = StatusMemo::default();
        let (user, jti) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(!memo.is_fresh(user, jti));
        memo.remember(user, jti);
        assert!(memo.is_fresh(user, jti));
        assert!(!memo.is_fresh(user, Uuid::new_v4()));
        memo.forget_user(user);
        assert!(!memo.is_fresh(user, jti));
    }
}

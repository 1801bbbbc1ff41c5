//! The answer of [`AuthStore::auth_configured`](super::AuthStore::auth_configured), kept for
//! a moment, for stores to share.
//!
//! The API asks on every request whether any user or token exists. The answer changes
//! rarely, and a read per request costs a trip to the database (a hand-off to a read
//! connection, a round trip to a server), a good part of a small request's work. So a store
//! keeps the last answer for [`AUTH_SEEN_FOR`]. Writes of users and tokens through the store
//! forget it at once; a change another process or node makes (`octoflow token create`
//! beside a running server) is seen within [`AUTH_SEEN_FOR`].
//!
//! A read that started before such a write may end after it; its answer is not kept (the
//! write's generation tells), so a stale answer is never kept past a write of this store.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a read answer is used before the table is read again.
pub const AUTH_SEEN_FOR: Duration = Duration::from_secs(1);

/// The kept answer.
#[derive(Debug, Default)]
pub struct AuthSeen {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Bumped by every write of users or tokens.
    generation: u64,
    /// The last answer and when the read that gave it began.
    answer: Option<(Instant, bool)>,
}

/// A read about to begin: what to hand back with its answer.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    generation: u64,
    began: Instant,
}

impl AuthSeen {
    /// The kept answer while fresh; otherwise `Err` with what the read about to begin hands
    /// to [`AuthSeen::keep`].
    ///
    /// # Errors
    /// When no fresh answer is kept: the caller reads, then keeps its answer.
    pub fn fresh(&self) -> Result<bool, Reading> {
        let seen = self.lock();
        let now = Instant::now();
        match seen.answer {
            Some((at, answer)) if now.duration_since(at) < AUTH_SEEN_FOR => Ok(answer),
            _ => Err(Reading {
                generation: seen.generation,
                began: now,
            }),
        }
    }

    /// Keeps a read's answer, unless a write came after the read began.
    pub fn keep(&self, reading: Reading, answer: bool) {
        let mut seen = self.lock();
        if seen.generation == reading.generation {
            seen.answer = Some((reading.began, answer));
        }
    }

    /// Forgets the answer: users or tokens were written.
    pub fn forget(&self) {
        let mut seen = self.lock();
        seen.generation += 1;
        seen.answer = None;
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        // The guarded value is valid whatever a panicking holder did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_until_forgotten() {
        let seen = AuthSeen::default();
        let reading = seen.fresh().unwrap_err();
        seen.keep(reading, true);
        assert_eq!(seen.fresh().ok(), Some(true));
        seen.forget();
        assert!(seen.fresh().is_err());
    }

    #[test]
    fn a_read_overtaken_by_a_write_is_not_kept() {
        let seen = AuthSeen::default();
        let reading = seen.fresh().unwrap_err();
        seen.forget();
        seen.keep(reading, false);
        assert!(seen.fresh().is_err(), "the write came after the read began");
    }
}

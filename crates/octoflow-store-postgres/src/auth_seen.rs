//! The answer of `auth_configured`, kept for a moment.
//!
//! The API asks on every request whether any user or token exists. The answer changes
//! rarely, and a read per request costs a round trip to the server, a good part of a small
//! request's work. So the store keeps the last answer for [`FRESH_FOR`]. Writes of users and
//! tokens through this store forget it at once; a change another node or process makes
//! (`octoflow token create` beside a running server) is seen within [`FRESH_FOR`].
//!
//! A read that started before such a write may end after it; its answer is not kept (the
//! write's generation tells), so a stale answer is never kept past a write of this store.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a read answer is used before the table is read again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// The kept answer.
#[derive(Debug, Default)]
pub(crate) struct AuthSeen {
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
pub(crate) struct Reading {
    generation: u64,
    began: Instant,
}

impl AuthSeen {
    /// The kept answer while fresh; otherwise `Err` with what the read about to begin hands
    /// to [`AuthSeen::keep`].
    pub(crate) fn fresh(&self) -> Result<bool, Reading> {
        let seen = self.lock();
        let now = Instant::now();
        match seen.answer {
            Some((at, answer)) if now.duration_since(at) < FRESH_FOR => Ok(answer),
            _ => Err(Reading {
                generation: seen.generation,
                began: now,
            }),
        }
    }

    /// Keeps a read's answer, unless a write came after the read began.
    pub(crate) fn keep(&self, reading: Reading, answer: bool) {
        let mut seen = self.lock();
        if seen.generation == reading.generation {
            seen.answer = Some((reading.began, answer));
        }
    }

    /// Forgets the answer: users or tokens were written.
    pub(crate) fn forget(&self) {
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

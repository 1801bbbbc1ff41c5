//! The scheduler's clock: the wall clock in production, a hand-moved one in tests, so DST,
//! month-end and catch-up cases run instantly.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// What the scheduler reads the time from and sleeps on.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once the time is `deadline` or later (at once when it already is).
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// The wall clock; sleeps on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        // Sleep on the monotonic timer for the wall-clock distance; the scheduler checks the
        // wall clock again when it wakes, so a clock step only delays or repeats a check.
        let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}

/// A clock that moves only when told to: [`set`](Self::set) or [`advance`](Self::advance)
/// wakes every sleeper whose deadline has come.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
    sleeps: AtomicU64,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::channel(start).0,
            sleeps: AtomicU64::new(0),
        }
    }

    /// How many times someone began to sleep on this clock (a loop that never rests shows
    /// here).
    pub fn sleeps(&self) -> u64 {
        self.sleeps.load(Ordering::Relaxed)
    }

    /// Moves the clock to `t` (backwards too).
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        let mut now = self.now.subscribe();
        // The sender lives as long as the clock, which outlives its sleepers.
        let _ = now.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_when_their_time_comes() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock
                    .sleep_until(start + chrono::Duration::seconds(10))
                    .await;
            }
        });
        clock.advance(chrono::Duration::seconds(5));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(chrono::Duration::seconds(5));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), start + chrono::Duration::seconds(10));
        // A deadline already past resolves at once.
        clock.sleep_until(start).await;
    }
}

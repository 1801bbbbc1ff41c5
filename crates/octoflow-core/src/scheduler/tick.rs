//! When a schedule's ticks fall: the next tick after an instant, the latest one at or before
//! an instant, and which ticks are due after downtime.
//!
//! - **cron**: 5 fields, or 6 with seconds first (croner, `Seconds::Optional`), in the
//!   schedule's IANA time zone (default UTC). Across DST changes croner follows vixie-cron:
//!   a fixed time that falls in a spring-forward gap (02:30 on a day that jumps from 02:00 to
//!   03:00) fires once, at the first valid time after the gap (03:00); a fixed time that
//!   occurs twice when clocks fall back fires once, at its first occurrence. Wildcard and step
//!   fields (`*/15`) skip the gap and fire in both passes of a repeated hour.
//! - **`every_seconds: N`**: ticks `N` seconds apart, aligned to the schedule's last fire
//!   time (`last + k·N`); a schedule that never fired starts its grid at the moment the
//!   scheduler first sees it, so its first tick is `N` seconds later.

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::flow::{Catchup, Schedule};

/// A schedule's cadence, parsed.
#[derive(Debug, Clone)]
pub(crate) enum Cadence {
    /// A cron expression in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<Cron>,
        /// Its time zone.
        tz: Tz,
    },
    /// A fixed interval.
    Every(Duration),
}

impl Cadence {
    /// Parses a schedule's cadence; the message says what is wrong (the flow checker and the
    /// API check schedules first, so this fails only on a stored schedule that went bad).
    pub(crate) fn parse(schedule: &Schedule) -> Result<Self, String> {
        let tz = match &schedule.timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| format!("unknown time zone `{name}`"))?,
        };
        match (&schedule.cron, schedule.every_seconds) {
            (Some(expr), None) => {
                let cron = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .year(Year::Disallowed)
                    .build()
                    .parse(expr)
                    .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))?;
                Ok(Self::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
            (None, Some(n)) if n >= 1 => {
                let secs =
                    i64::try_from(n).map_err(|_| format!("`every_seconds` {n} is too large"))?;
                Duration::try_seconds(secs)
                    .map(Self::Every)
                    .ok_or_else(|| format!("`every_seconds` {n} is too large"))
            }
            _ => Err("give either `cron` or `every_seconds` (at least 1)".to_owned()),
        }
    }

    /// The first tick strictly after `t`. For an interval, `t` is a point of the grid
    /// (a tick, or the grid's start).
    pub(crate) fn after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { cron, tz } => cron
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|next| next.with_timezone(&Utc)),
            Self::Every(step) => t.checked_add_signed(*step),
        }
    }

    /// The first tick strictly after `now`, on the grid through `anchor` for an interval.
    pub(crate) fn after_now(
        &self,
        now: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { .. } => self.after(now),
            Self::Every(_) => self
                .at_or_before(now, anchor)
                .map_or(Some(anchor), |latest| self.after(latest)),
        }
    }

    /// The latest tick at or before `now` and not before `from` (for an interval, on the grid
    /// through `from`); `None` when there is none.
    pub(crate) fn at_or_before(
        &self,
        now: DateTime<Utc>,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if now < from {
            return None;
        }
        match self {
            Self::Cron { cron, tz } => cron
                .find_previous_occurrence(&now.with_timezone(tz), true)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t >= from),
            Self::Every(step) => {
                let step_ms = step.num_milliseconds().max(1);
                let steps = (now - from).num_milliseconds() / step_ms;
                from.checked_add_signed(TimeDelta::milliseconds(steps * step_ms))
            }
        }
    }

    /// The tick a schedule waits for when the scheduler takes it up at `now`, having last
    /// fired at `last`:
    ///
    /// - never fired: the first tick after `now` (an interval's grid starts at `now`);
    /// - `catchup: none`: the first tick after `now` (on the grid through `last`): the
    ///   missed ones are skipped;
    /// - `last` and `all`: the first tick after `last`; when that is already past, the
    ///   scheduler fires the missed ticks as [`due`](Self::due) says.
    pub(crate) fn first_tick(
        &self,
        now: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
        catchup: Catchup,
    ) -> Option<DateTime<Utc>> {
        match (last, catchup) {
            (None, _) => match self {
                Self::Cron { .. } => self.after(now),
                Self::Every(_) => self.after(grid_start(now)),
            },
            (Some(last), Catchup::None) => self.after_now(now, last),
            (Some(last), Catchup::Last | Catchup::All) => self.after(last),
        }
    }

    /// The ticks to fire now, in order, when the schedule waited for `next` and the time is
    /// `now` (`next <= now`): every one up to `now` with `catchup: all`, else only the latest
    /// (`last`, and `none` when the scheduler itself fell behind). At most `limit` ticks.
    pub(crate) fn due(
        &self,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
        catchup: Catchup,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        if next > now {
            return Vec::new();
        }
        if catchup != Catchup::All {
            return vec![self.at_or_before(now, next).unwrap_or(next)];
        }
        let mut ticks = vec![next];
        while ticks.len() < limit {
            match ticks.last().and_then(|t| self.after(*t)) {
                Some(t) if t <= now => ticks.push(t),
                _ => break,
            }
        }
        ticks
    }
}

/// Where the grid of a never-fired interval starts: `now` to the millisecond.
pub(crate) fn grid_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;

//! The loop's table: every schedule it knows with its parsed cadence, whether it is paused,
//! and the tick it waits for.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::tick::Cadence;
use crate::flow::Schedule;
use crate::store::{ScheduleMark, ScheduleSource};

/// One schedule as declared: in a flow file or through the API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Def {
    /// `flow:<name>:<index>`, or the API schedule's id.
    pub(crate) key: String,
    /// The flow it starts.
    pub(crate) flow: String,
    /// Where it was declared.
    pub(crate) source: ScheduleSource,
    /// Its cadence, catch-up and params.
    pub(crate) schedule: Schedule,
    /// When it was added (API schedules).
    pub(crate) created_at: Option<DateTime<Utc>>,
    /// Paused unless the store says otherwise (a file schedule `autostart` leaves out).
    pub(crate) paused_by_default: bool,
}

impl Def {
    /// Whether it is paused, given its mark.
    pub(crate) fn paused(&self, mark: Option<&ScheduleMark>) -> bool {
        mark.and_then(|m| m.paused)
            .unwrap_or(self.paused_by_default)
    }

    /// Whether it was removed through the API: a file schedule whose mark keeps its cadence
    /// as removed.
    pub(crate) fn removed(&self, mark: Option<&ScheduleMark>) -> bool {
        mark.and_then(|m| m.removed.as_deref())
            .is_some_and(|removed| removed == self.schedule.cadence_key())
    }
}

/// One schedule in the table.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) def: Def,
    pub(crate) cadence: Cadence,
    pub(crate) paused: bool,
    /// The tick it waits for; `None` when paused or when no tick is left.
    pub(crate) next: Option<DateTime<Utc>>,
    /// After a store failure: not before this time.
    pub(crate) retry_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// When the loop should look at it next.
    pub(crate) fn wake_at(&self) -> Option<DateTime<Utc>> {
        let next = self.next?;
        Some(self.retry_at.map_or(next, |retry| retry.max(next)))
    }
}

/// Every schedule the loop knows, by key.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) entries: HashMap<String, Entry>,
}

impl Table {
    /// Takes up the current definitions at `now` (removed ones are left out). A schedule
    /// that is unchanged and was active keeps the tick it waits for; one whose definition
    /// changed starts from now; a new one (or one resumed) starts from its last fire time as
    /// its catch-up says.
    pub(crate) fn reload(
        &mut self,
        defs: Vec<Def>,
        marks: &HashMap<String, ScheduleMark>,
        now: DateTime<Utc>,
    ) {
        let mut old = std::mem::take(&mut self.entries);
        for def in defs {
            let cadence = match Cadence::parse(&def.schedule) {
                Ok(cadence) => cadence,
                Err(error) => {
                    tracing::warn!(schedule = %def.key, flow = %def.flow, error = %error, "Schedule skipped.");
                    continue;
                }
            };
            let mark = marks.get(&def.key);
            if def.removed(mark) {
                continue;
            }
            let paused = def.paused(mark);
            let before = old.remove(&def.key).filter(|e| !e.paused);
            let next = match before {
                _ if paused => None,
                Some(e) if e.def.schedule == def.schedule && e.def.flow == def.flow => e.next,
                Some(_) => cadence.first_tick(now, None, def.schedule.catchup),
                None => {
                    cadence.first_tick(now, mark.and_then(|m| m.last_fire), def.schedule.catchup)
                }
            };
            self.entries.insert(
                def.key.clone(),
                Entry {
                    def,
                    cadence,
                    paused,
                    next,
                    retry_at: None,
                },
            );
        }
    }

    /// When the earliest active schedule is due.
    pub(crate) fn earliest(&self) -> Option<DateTime<Utc>> {
        self.entries.values().filter_map(Entry::wake_at).min()
    }

    /// The ticks due at `now`, by key, each key's in order (at most `limit` per key).
    pub(crate) fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Vec<(String, Vec<DateTime<Utc>>)> {
        self.entries
            .values()
            .filter(|e| e.wake_at().is_some_and(|t| t <= now))
            .filter_map(|e| {
                let next = e.next?;
                let ticks = e.cadence.due(next, now, e.def.schedule.catchup, limit);
                Some((e.def.key.clone(), ticks))
            })
            .collect()
    }
}

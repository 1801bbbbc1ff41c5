//! In-memory schedules: the API's schedules and each key's mark. A fire checks the mark,
//! records the tick and admits the run under the store's one lock, so it is one step.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Inner, MemoryStore};
use crate::store::{
    Admitted, Fire, ScheduleMark, ScheduleSource, ScheduleStore, StoreError, StoredSchedule,
};

/// The mark of `key`, made empty when missing.
fn mark<'a>(
    marks: &'a mut std::collections::BTreeMap<String, ScheduleMark>,
    key: &str,
) -> &'a mut ScheduleMark {
    marks.entry(key.to_owned()).or_insert_with(|| ScheduleMark {
        key: key.to_owned(),
        last_fire: None,
        paused: None,
        removed: None,
    })
}

impl Inner {
    /// Fires one tick: checks the key's mark, admits the run, records the tick.
    fn fire_one(&mut self, fire: &Fire) -> Result<Option<Admitted>, StoreError> {
        if ScheduleSource::of_key(&fire.key) == ScheduleSource::Api
            && !self.schedules.iter().any(|s| s.id == fire.key)
        {
            return Ok(None);
        }
        let current = self.schedule_marks.get(&fire.key);
        if current.is_some_and(|m| {
            m.paused == Some(true) || m.last_fire.is_some_and(|last| last >= fire.tick)
        }) {
            return Ok(None);
        }
        let admitted = self.admit(&fire.run, &fire.admission)?;
        mark(&mut self.schedule_marks, &fire.key).last_fire = Some(fire.tick);
        Ok(Some(admitted))
    }
}

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn add_schedule(&self, schedule: &StoredSchedule) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.schedules.iter().any(|s| s.id == schedule.id) {
            return Err(StoreError::Conflict {
                what: "schedule id".to_owned(),
            });
        }
        inner.schedules.push(schedule.clone());
        if schedule.paused {
            mark(&mut inner.schedule_marks, &schedule.id).paused = Some(true);
        }
        inner.schedule_changes += 1;
        Ok(())
    }

    async fn schedule_changes(&self) -> Result<u64, StoreError> {
        Ok(self.lock().schedule_changes)
    }

    async fn schedules(&self) -> Result<Vec<StoredSchedule>, StoreError> {
        let inner = self.lock();
        let mut out = inner.schedules.clone();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for schedule in &mut out {
            schedule.paused = inner
                .schedule_marks
                .get(&schedule.id)
                .and_then(|m| m.paused)
                .unwrap_or(false);
        }
        Ok(out)
    }

    async fn remove_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let before = inner.schedules.len();
        inner.schedules.retain(|s| s.id != id);
        let removed = inner.schedules.len() < before;
        if removed {
            inner.schedule_marks.remove(id);
        }
        inner.schedule_changes += 1;
        Ok(removed)
    }

    async fn schedule_marks(&self) -> Result<Vec<ScheduleMark>, StoreError> {
        Ok(self.lock().schedule_marks.values().cloned().collect())
    }

    async fn set_schedule_paused(
        &self,
        key: &str,
        paused: bool,
        caught_up: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let mark = mark(&mut inner.schedule_marks, key);
        mark.paused = Some(paused);
        if let Some(caught_up) = caught_up
            && mark.last_fire.is_none_or(|last| last < caught_up)
        {
            mark.last_fire = Some(caught_up);
        }
        inner.schedule_changes += 1;
        Ok(())
    }

    async fn remove_file_schedule(&self, key: &str, definition: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        mark(&mut inner.schedule_marks, key).removed = Some(definition.to_owned());
        inner.schedule_changes += 1;
        Ok(())
    }

    async fn fire(&self, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError> {
        let mut inner = self.lock();
        // All or none: the only way an admission fails here is a run id already taken.
        let mut ids = HashSet::new();
        if fires
            .iter()
            .any(|f| !ids.insert(f.run.id) || inner.runs.iter().any(|r| r.id == f.run.id))
        {
            return Err(StoreError::Conflict {
                what: "run id".to_owned(),
            });
        }
        let mut answers = Vec::with_capacity(fires.len());
        let mut wake = false;
        for fire in fires {
            answers.push(inner.fire_one(fire)?);
            wake |= matches!(
                answers.last(),
                Some(Some(Admitted::Created(_) | Admitted::Replaced { .. }))
            );
        }
        drop(inner);
        if wake {
            self.wake();
        }
        Ok(answers)
    }
}

//! What the API does with schedules: list them (file and API ones, with their last and next
//! fire times), add, pause, resume and remove them. Every change is kept in the store and
//! wakes the loop.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::table::Def;
use super::tick::Cadence;
use super::{Scheduler, file_key, file_schedules};
use crate::flow::{Catchup, Flow, ParamError, Schedule};
use crate::store::{ScheduleMark, ScheduleSource, StoreError, StoredSchedule};

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Its key: `flow:<name>:<index>` for a file schedule, the id of an API one.
    pub id: String,
    /// The flow it starts.
    pub flow: String,
    /// `file` or `api`.
    pub source: ScheduleSource,
    /// Cron expression (5 fields, or 6 with seconds first).
    pub cron: Option<String>,
    /// Interval in seconds.
    pub every_seconds: Option<u64>,
    /// IANA time zone of the cron expression (`null`: UTC).
    pub timezone: Option<String>,
    /// `none`, `last` or `all`.
    #[schema(value_type = String)]
    pub catchup: Catchup,
    /// Params of the runs it starts.
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Whether it is paused.
    pub paused: bool,
    /// Whether it was removed through the API (a file schedule: it stays listed, and fires
    /// no more while its flow file declares the same cadence).
    pub removed: bool,
    /// The tick it last fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// The tick it fires next; `null` when paused or removed.
    pub next_fire: Option<DateTime<Utc>>,
    /// When it was added (API schedules).
    pub created_at: Option<DateTime<Utc>>,
}

/// Why a schedule change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule is not valid: `(field, message)` pairs.
    #[error("invalid schedule: {}", .0.iter().map(|(f, m)| if f.is_empty() { m.clone() } else { format!("{f}: {m}") }).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// Its params do not fit the flow.
    #[error("invalid params: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Params(Vec<ParamError>),
    /// No schedule has this key.
    #[error("no schedule `{0}`")]
    NotFound(String),
    /// The file schedule was removed through the API: it cannot be paused or resumed.
    #[error(
        "schedule `{0}` was removed; declare another cadence in its flow file, or add a schedule"
    )]
    Removed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Scheduler {
    /// Every schedule: file ones by flow name, then API ones, oldest first.
    pub async fn list(&self) -> Result<Vec<ScheduleView>, StoreError> {
        let (defs, marks) = self.defs().await?;
        let marks: HashMap<String, ScheduleMark> =
            marks.into_iter().map(|m| (m.key.clone(), m)).collect();
        Ok(defs
            .into_iter()
            .map(|def| {
                let mark = marks.get(&def.key);
                self.view(def, mark)
            })
            .collect())
    }

    /// One schedule by key.
    pub async fn get(&self, key: &str) -> Result<Option<ScheduleView>, StoreError> {
        Ok(self.list().await?.into_iter().find(|v| v.id == key))
    }

    /// Adds a schedule of `flow` (checked: its cadence, time zone and params) and wakes the
    /// loop.
    pub async fn add(
        &self,
        flow: &Flow,
        schedule: Schedule,
    ) -> Result<ScheduleView, ScheduleError> {
        let problems = schedule.check();
        if !problems.is_empty() {
            return Err(ScheduleError::Invalid(problems));
        }
        flow.params
            .validate(&schedule.params)
            .map_err(ScheduleError::Params)?;
        let stored = StoredSchedule {
            id: uuid::Uuid::now_v7().to_string(),
            flow: flow.name.clone(),
            schedule,
            paused: false,
            created_at: self.inner.clock.now(),
        };
        self.inner.service.store().add_schedule(&stored).await?;
        tracing::info!(schedule = %stored.id, flow = %stored.flow, "Schedule added.");
        self.changed();
        self.found(&stored.id).await
    }

    /// Pauses a schedule (file or API): it fires no more until resumed.
    pub async fn pause(&self, key: &str) -> Result<ScheduleView, ScheduleError> {
        self.active(key).await?;
        let store = self.inner.service.store();
        store.set_schedule_paused(key, true, None).await?;
        tracing::info!(schedule = %key, "Schedule paused.");
        self.changed();
        self.found(key).await
    }

    /// Resumes a schedule; the ticks missed while it was paused are not caught up (its last
    /// fire time moves to the latest tick before now).
    pub async fn resume(&self, key: &str) -> Result<ScheduleView, ScheduleError> {
        let view = self.active(key).await?;
        let caught_up = Cadence::parse(&schedule_of(&view))
            .ok()
            .filter(|_| view.paused)
            .and_then(|cadence| {
                let now = self.inner.clock.now();
                let from = view.last_fire.unwrap_or(now - Duration::days(366));
                match (&cadence, view.last_fire) {
                    (Cadence::Every(_), None) => None,
                    _ => cadence.at_or_before(now, from),
                }
            });
        let store = self.inner.service.store();
        store.set_schedule_paused(key, false, caught_up).await?;
        tracing::info!(schedule = %key, "Schedule resumed.");
        self.changed();
        self.found(key).await
    }

    /// Removes a schedule. An API schedule is deleted; a file schedule stays removed, across
    /// restarts and reloads, while its flow file declares the same cadence (removing it
    /// again changes nothing).
    pub async fn remove(&self, key: &str) -> Result<(), ScheduleError> {
        let store = self.inner.service.store();
        if ScheduleSource::of_key(key) == ScheduleSource::File {
            let view = self.found(key).await?;
            if view.removed {
                return Ok(());
            }
            let cadence = schedule_of(&view).cadence_key();
            store.remove_file_schedule(key, &cadence).await?;
        } else if !store.remove_schedule(key).await? {
            return Err(ScheduleError::NotFound(key.to_owned()));
        }
        tracing::info!(schedule = %key, "Schedule removed.");
        self.changed();
        Ok(())
    }

    async fn found(&self, key: &str) -> Result<ScheduleView, ScheduleError> {
        self.get(key)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(key.to_owned()))
    }

    /// A schedule that was not removed.
    async fn active(&self, key: &str) -> Result<ScheduleView, ScheduleError> {
        let view = self.found(key).await?;
        if view.removed {
            return Err(ScheduleError::Removed(key.to_owned()));
        }
        Ok(view)
    }

    /// Every definition (file schedules of the library's valid flows, then the store's), and
    /// the store's marks.
    pub(crate) async fn defs(&self) -> Result<(Vec<Def>, Vec<ScheduleMark>), StoreError> {
        let inner = &self.inner;
        let mut defs = Vec::new();
        for entry in inner.library.entries() {
            let Some(flow) = &entry.flow else {
                continue;
            };
            let paused_by_default = !inner.autostart.allows(&entry);
            for (index, schedule) in file_schedules(flow).enumerate() {
                defs.push(Def {
                    key: file_key(&flow.name, index),
                    flow: flow.name.clone(),
                    source: ScheduleSource::File,
                    schedule: schedule.clone(),
                    created_at: None,
                    paused_by_default,
                });
            }
        }
        let store = inner.service.store();
        for stored in store.schedules().await? {
            defs.push(Def {
                key: stored.id,
                flow: stored.flow,
                source: ScheduleSource::Api,
                schedule: stored.schedule,
                created_at: Some(stored.created_at),
                paused_by_default: false,
            });
        }
        Ok((defs, store.schedule_marks().await?))
    }

    /// A definition as shown: its next fire time is the loop's when it runs, else the next
    /// tick after now.
    fn view(&self, def: Def, mark: Option<&ScheduleMark>) -> ScheduleView {
        let paused = def.paused(mark);
        let removed = def.removed(mark);
        let last_fire = mark.and_then(|m| m.last_fire);
        let published = self
            .published()
            .as_ref()
            .and_then(|p| p.get(&def.key).map(|p| p.next));
        let next_fire = match published {
            _ if paused || removed => None,
            Some(Some(next)) => Some(next),
            // Not taken up by the loop yet (just added or resumed), or no loop runs here.
            _ => Cadence::parse(&def.schedule).ok().and_then(|c| {
                let now = self.inner.clock.now();
                c.after_now(now, last_fire.unwrap_or(now))
            }),
        };
        let Schedule {
            cron,
            every_seconds,
            timezone,
            catchup,
            params,
        } = def.schedule;
        ScheduleView {
            id: def.key,
            flow: def.flow,
            source: def.source,
            cron,
            every_seconds,
            timezone,
            catchup,
            params,
            paused,
            removed,
            last_fire,
            next_fire,
            created_at: def.created_at,
        }
    }
}

/// The schedule a view shows.
fn schedule_of(view: &ScheduleView) -> Schedule {
    Schedule {
        cron: view.cron.clone(),
        every_seconds: view.every_seconds,
        timezone: view.timezone.clone(),
        catchup: view.catchup,
        params: view.params.clone(),
    }
}

//! A store that keeps everything in memory: for library use and tests, where nothing needs
//! to survive the process.
//!
//! Runs, step runs, logs and state live here; the queue and locks in [`queue`], users and
//! tokens in [`auth`], schedules in [`schedules`].

mod auth;
mod copy;
mod queue;
mod schedules;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::{
    ApiToken, Fence, LogLine, Page, Paged, Progress, Run, RunError, RunFilter, RunId, RunStatus,
    RunStore, RunUpdate, StateStore, StepFinish, StepRun, StepRunId, StepStatus, StoreError, User,
};

/// Runs, step runs, logs, the queue and auth records in memory. A clone is another handle
/// to the same store.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// Wakes [`wait_for_work`](super::QueueStore::wait_for_work); `notify_one` keeps a
    /// wake-up nobody waited for as a permit.
    work: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: Vec<Run>,
    steps: Vec<StepRun>,
    logs: Vec<LogLine>,
    state: HashMap<String, Map<String, Value>>,
    /// Leases of claimed runs: the node and when the lease ends.
    leases: HashMap<RunId, (String, DateTime<Utc>)>,
    /// Runs admitted with a concurrency limit that claims must respect.
    limits: HashMap<RunId, u32>,
    /// Idempotency keys of admitted runs: `(flow, key)` → run.
    idempotency: HashMap<(String, String), RunId>,
    /// Running runs someone asked to cancel.
    cancel_requested: HashSet<RunId>,
    /// Running runs whose concurrency key was freed by hand.
    lock_released: HashSet<RunId>,
    users: BTreeMap<String, User>,
    /// Tokens with the digest of their secret.
    tokens: Vec<(ApiToken, String)>,
    node_key: Option<Vec<u8>>,
    /// Schedules added through the API.
    schedules: Vec<super::StoredSchedule>,
    /// Each schedule key's last fire time and pause flag.
    schedule_marks: BTreeMap<String, super::ScheduleMark>,
    /// How many times the schedules were changed.
    schedule_changes: u64,
}

impl Inner {
    /// The run `fence` holds: running under that generation.
    fn held_mut(&mut self, fence: &Fence) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| {
            r.id == fence.run && r.status == RunStatus::Running && r.generation == fence.generation
        })
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panicking test; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Says that work may have arrived.
    fn wake(&self) {
        self.work.notify_one();
    }
}

fn apply(run: &mut Run, update: &RunUpdate) {
    run.status = update.status;
    if let Some(t) = update.started_at {
        run.started_at = Some(t);
    }
    if let Some(t) = update.finished_at {
        run.finished_at = Some(t);
    }
    if let Some(e) = &update.error {
        run.error = Some(e.clone());
    }
    if let Some(d) = &update.data {
        run.data = d.clone();
    }
    if let Some(n) = &update.node {
        run.node = Some(n.clone());
    }
    if let Some(m) = &update.message {
        run.message = Some(m.clone());
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn insert_run(&self, run: &Run) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.runs.iter().any(|r| r.id == run.id) {
            return Err(StoreError::Conflict {
                what: "run id".to_owned(),
            });
        }
        inner.runs.push(run.clone());
        drop(inner);
        if run.status == RunStatus::Queued {
            self.wake();
        }
        Ok(())
    }

    async fn insert_ended(&self, run: &Run, steps: &[StepRun]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.runs.iter().any(|r| r.id == run.id) {
            return Err(StoreError::Conflict {
                what: "run id".to_owned(),
            });
        }
        inner.runs.push(run.clone());
        inner.steps.extend_from_slice(steps);
        Ok(())
    }

    async fn end_run(
        &self,
        fence: &Fence,
        steps: &[StepRun],
        update: &RunUpdate,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let run = inner
            .held_mut(fence)
            .ok_or(StoreError::Fenced { run: fence.run })?;
        apply(run, update);
        inner.leases.remove(&fence.run);
        inner.steps.extend_from_slice(steps);
        drop(inner);
        self.wake();
        Ok(())
    }

    async fn insert_step_run(
        &self,
        fence: &Fence,
        step: &StepRun,
    ) -> Result<StepRunId, StoreError> {
        let mut inner = self.lock();
        if inner.held_mut(fence).is_none() {
            return Err(StoreError::Fenced { run: fence.run });
        }
        inner.steps.push(step.clone());
        Ok(i64::try_from(inner.steps.len()).unwrap_or(i64::MAX))
    }

    async fn finish_step_run(
        &self,
        fence: &Fence,
        id: StepRunId,
        finish: &StepFinish,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.held_mut(fence).is_none() {
            return Err(StoreError::Fenced { run: fence.run });
        }
        let index = usize::try_from(id - 1).unwrap_or(usize::MAX);
        if let Some(step) = inner.steps.get_mut(index) {
            step.status = finish.status;
            step.finished_at = Some(finish.finished_at);
            step.result.clone_from(&finish.result);
            step.error.clone_from(&finish.error);
        }
        Ok(())
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let first = inner.logs.len() as u64 + 1;
        inner
            .logs
            .extend(lines.iter().zip(first..).map(|(line, seq)| LogLine {
                seq,
                ..line.clone()
            }));
        Ok(())
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        Ok(self.lock().runs.iter().find(|r| r.id == *id).cloned())
    }

    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
        Ok(self
            .lock()
            .steps
            .iter()
            .filter(|s| s.run_id == *id)
            .cloned()
            .collect())
    }

    async fn logs(
        &self,
        id: &RunId,
        step: Option<&str>,
        after: u64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let inner = self.lock();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(inner.logs.len());
        Ok(inner.logs[start..]
            .iter()
            .filter(|l| l.run_id == *id && step.is_none_or(|s| l.step == s))
            .cloned()
            .collect())
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError> {
        let inner = self.lock();
        let mut matching: Vec<&Run> = inner
            .runs
            .iter()
            .filter(|r| filter.flow.as_ref().is_none_or(|f| &r.flow == f))
            .filter(|r| filter.status.is_empty() || filter.status.contains(&r.status))
            .filter(|r| filter.trigger.as_ref().is_none_or(|t| &r.trigger.kind == t))
            .filter(|r| filter.parent.is_none_or(|p| r.parent_run_id == Some(p)))
            .filter(|r| filter.since.is_none_or(|s| r.created_at >= s))
            .filter(|r| filter.until.is_none_or(|u| r.created_at < u))
            .collect();
        matching.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let per_page = page.per_page.max(1) as usize;
        let skip = (page.page.max(1) as usize - 1) * per_page;
        Ok(Paged {
            total: matching.len() as u64,
            items: matching
                .into_iter()
                .skip(skip)
                .take(per_page)
                .cloned()
                .collect(),
            page: page.page.max(1),
            per_page: page.per_page.max(1),
        })
    }

    async fn running_runs(&self) -> Result<Vec<Run>, StoreError> {
        Ok(self
            .lock()
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .cloned()
            .collect())
    }

    async fn mark_interrupted(&self, fence: &Fence) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let now = Utc::now();
        let id = &fence.run;
        let running_step = inner
            .steps
            .iter()
            .rfind(|s| s.run_id == *id && s.status == StepStatus::Running)
            .map(|s| s.step.clone());
        let Some(run) = inner.held_mut(fence) else {
            return Ok(false);
        };
        run.status = RunStatus::Failed;
        run.finished_at = Some(now);
        run.error = Some(RunError {
            step: running_step,
            message: "interrupted".to_owned(),
        });
        for step in inner
            .steps
            .iter_mut()
            .filter(|s| s.run_id == *id && s.status == StepStatus::Running)
        {
            step.status = StepStatus::Failed;
            step.finished_at = Some(now);
            step.error = Some("interrupted".to_owned());
        }
        inner.leases.remove(id);
        drop(inner);
        self.wake();
        Ok(true)
    }

    async fn set_progress(&self, id: &RunId, progress: &Progress) -> Result<(), StoreError> {
        if let Some(run) = self.lock().runs.iter_mut().find(|r| r.id == *id) {
            run.progress = Some(progress.clone());
        }
        Ok(())
    }

    async fn prune_runs(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError> {
        let mut inner = self.lock();
        let mut old: Vec<(DateTime<Utc>, RunId)> = inner
            .runs
            .iter()
            .filter(|r| r.status.is_final())
            .filter_map(|r| r.finished_at.filter(|t| *t < before).map(|t| (t, r.id)))
            .collect();
        old.sort();
        old.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let ids: Vec<RunId> = old.into_iter().map(|(_, id)| id).collect();
        inner.runs.retain(|r| !ids.contains(&r.id));
        inner.steps.retain(|s| !ids.contains(&s.run_id));
        inner.logs.retain(|l| !ids.contains(&l.run_id));
        inner.idempotency.retain(|_, run| !ids.contains(run));
        for id in &ids {
            inner.leases.remove(id);
            inner.limits.remove(id);
            inner.cancel_requested.remove(id);
            inner.lock_released.remove(id);
        }
        Ok(ids)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn state(&self, flow: &str) -> Result<Map<String, Value>, StoreError> {
        Ok(self.lock().state.get(flow).cloned().unwrap_or_default())
    }

    async fn set_state(&self, flow: &str, values: &Map<String, Value>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner.state.entry(flow.to_owned()).or_default();
        entry.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

/// One process's store: no other node to tell anything.
impl super::NoticeStore for MemoryStore {}

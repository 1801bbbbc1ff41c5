//! A store that keeps everything in memory: for library use and tests, where nothing needs
//! to survive the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    LogLine, Page, Paged, QueueStore, Run, RunError, RunFilter, RunId, RunStatus, RunStore,
    RunUpdate, StateStore, StepFinish, StepRun, StepRunId, StepStatus, StoreError,
};

/// Runs, step runs and logs in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: Vec<Run>,
    steps: Vec<StepRun>,
    logs: Vec<LogLine>,
    state: HashMap<String, Map<String, Value>>,
    /// Leases of claimed runs: the node and when the lease ends.
    leases: HashMap<RunId, (String, DateTime<Utc>)>,
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
        Ok(())
    }

    async fn update_run(&self, update: &RunUpdate) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(run) = inner.runs.iter_mut().find(|r| r.id == update.id) {
            apply(run, update);
        }
        Ok(())
    }

    async fn insert_step_run(&self, step: &StepRun) -> Result<StepRunId, StoreError> {
        let mut inner = self.lock();
        inner.steps.push(step.clone());
        Ok(i64::try_from(inner.steps.len()).unwrap_or(i64::MAX))
    }

    async fn finish_step_run(&self, id: StepRunId, finish: &StepFinish) -> Result<(), StoreError> {
        let mut inner = self.lock();
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
        self.lock().logs.extend_from_slice(lines);
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

    async fn logs(&self, id: &RunId, step: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        Ok(self
            .lock()
            .logs
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

    async fn mark_interrupted(&self, id: &RunId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let now = Utc::now();
        let running_step = inner
            .steps
            .iter()
            .rfind(|s| s.run_id == *id && s.status == StepStatus::Running)
            .map(|s| s.step.clone());
        let Some(run) = inner
            .runs
            .iter_mut()
            .find(|r| r.id == *id && r.status == RunStatus::Running)
        else {
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
        Ok(true)
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

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl QueueStore for MemoryStore {
    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError> {
        let mut inner = self.lock();
        let now = Utc::now();
        let mut queued: Vec<usize> = (0..inner.runs.len())
            .filter(|&i| inner.runs[i].status == RunStatus::Queued)
            .collect();
        queued.sort_by_key(|&i| (inner.runs[i].created_at, inner.runs[i].id));
        let mut claimed = Vec::new();
        for i in queued.into_iter().take(limit as usize) {
            let run = &mut inner.runs[i];
            run.status = RunStatus::Running;
            run.node = Some(node.to_owned());
            run.started_at.get_or_insert(now);
            let run = run.clone();
            inner
                .leases
                .insert(run.id, (node.to_owned(), lease_end(lease)));
            claimed.push(run);
        }
        Ok(claimed)
    }

    async fn renew(&self, id: &RunId, node: &str, lease: Duration) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let running = inner
            .runs
            .iter()
            .any(|r| r.id == *id && r.status == RunStatus::Running);
        match inner.leases.get_mut(id) {
            Some((holder, until)) if running && holder == node => {
                *until = lease_end(lease);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .filter(|r| {
                inner
                    .leases
                    .get(&r.id)
                    .is_some_and(|(_, until)| *until < now)
            })
            .cloned()
            .collect())
    }

    async fn requeue(&self, id: &RunId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(run) = inner
            .runs
            .iter_mut()
            .find(|r| r.id == *id && r.status == RunStatus::Running)
        else {
            return Ok(false);
        };
        run.status = RunStatus::Queued;
        run.node = None;
        run.started_at = None;
        inner.leases.remove(id);
        Ok(true)
    }
}

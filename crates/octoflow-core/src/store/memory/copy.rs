//! In-memory bulk export and import ([`CopyStore`]): what the store keeps beside a run (its
//! lease, limit, idempotency key, cancel request, freed lock) travels with it, and an import
//! under the store's one lock is all or nothing.

use async_trait::async_trait;

use super::{Inner, MemoryStore};
use crate::store::{
    CopyCounts, CopyStore, LogLine, MarkRecord, Run, RunId, RunRecord, RunStatus, StateRecord,
    StoreError, StoreRecords, TokenRecord,
};

impl Inner {
    /// Runs after `after`, in id order, at most `limit`.
    fn runs_after(&self, after: Option<RunId>, limit: u32) -> Vec<&Run> {
        let mut runs: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| after.is_none_or(|after| r.id > after))
            .collect();
        runs.sort_by_key(|r| r.id);
        runs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        runs
    }

    /// A run with everything kept beside it.
    fn record(&self, run: &Run) -> RunRecord {
        RunRecord {
            run: run.clone(),
            concurrency_limit: self.limits.get(&run.id).copied(),
            idempotency_key: self
                .idempotency
                .iter()
                .find(|(_, id)| **id == run.id)
                .map(|((_, key), _)| key.clone()),
            lease_until: self.leases.get(&run.id).map(|(_, until)| *until),
            cancel_requested: self.cancel_requested.contains(&run.id),
            lock_released: self.lock_released.contains(&run.id),
            steps: self
                .steps
                .iter()
                .filter(|s| s.run_id == run.id)
                .cloned()
                .collect(),
            logs: self
                .logs
                .iter()
                .filter(|l| l.run_id == run.id)
                .cloned()
                .collect(),
        }
    }

    /// Records a run that is not here yet, with what belongs to it.
    fn import(&mut self, record: &RunRecord) -> CopyCounts {
        let id = record.run.id;
        if let Some(limit) = record.concurrency_limit {
            self.limits.insert(id, limit);
        }
        if let Some(key) = &record.idempotency_key {
            self.idempotency
                .insert((record.run.flow.clone(), key.clone()), id);
        }
        if let Some(until) = record.lease_until {
            let node = record.run.node.clone().unwrap_or_default();
            self.leases.insert(id, (node, until));
        }
        if record.cancel_requested {
            self.cancel_requested.insert(id);
        }
        if record.lock_released {
            self.lock_released.insert(id);
        }
        self.runs.push(record.run.clone());
        self.steps.extend_from_slice(&record.steps);
        let first = self.logs.len() as u64 + 1;
        self.logs
            .extend(record.logs.iter().zip(first..).map(|(line, seq)| LogLine {
                seq,
                ..line.clone()
            }));
        CopyCounts {
            runs: 1,
            step_runs: record.steps.len() as u64,
            log_lines: record.logs.len() as u64,
            ..CopyCounts::default()
        }
    }
}

#[async_trait]
impl CopyStore for MemoryStore {
    async fn run_ids(&self, after: Option<RunId>, limit: u32) -> Result<Vec<RunId>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .runs_after(after, limit)
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    async fn export_runs(
        &self,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .runs_after(after, limit)
            .into_iter()
            .map(|run| inner.record(run))
            .collect())
    }

    async fn import_runs(&self, runs: &[RunRecord]) -> Result<CopyCounts, StoreError> {
        let mut inner = self.lock();
        let mut counts = CopyCounts::default();
        let mut queued = false;
        for record in runs {
            if inner.runs.iter().any(|r| r.id == record.run.id) {
                continue;
            }
            counts += inner.import(record);
            queued |= record.run.status == RunStatus::Queued;
        }
        drop(inner);
        if queued {
            self.wake();
        }
        Ok(counts)
    }

    async fn export_records(&self) -> Result<StoreRecords, StoreError> {
        let inner = self.lock();
        let mut schedules = inner.schedules.clone();
        for schedule in &mut schedules {
            schedule.paused = inner
                .schedule_marks
                .get(&schedule.id)
                .and_then(|m| m.paused)
                .unwrap_or(false);
        }
        let mut state: Vec<StateRecord> = inner
            .state
            .iter()
            .flat_map(|(flow, values)| {
                values.iter().map(|(key, value)| StateRecord {
                    flow: flow.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    updated_at: None,
                })
            })
            .collect();
        state.sort_by(|a, b| (&a.flow, &a.key).cmp(&(&b.flow, &b.key)));
        Ok(StoreRecords {
            users: inner.users.values().cloned().collect(),
            tokens: inner
                .tokens
                .iter()
                .map(|(token, digest)| TokenRecord {
                    token: token.clone(),
                    digest: digest.clone(),
                })
                .collect(),
            schedules,
            marks: inner
                .schedule_marks
                .values()
                .map(|mark| MarkRecord {
                    mark: mark.clone(),
                    updated_at: None,
                })
                .collect(),
            state,
            node_key: inner.node_key.clone(),
        })
    }

    async fn import_records(&self, records: &StoreRecords) -> Result<CopyCounts, StoreError> {
        let mut inner = self.lock();
        let mut counts = CopyCounts::default();
        for user in &records.users {
            if !inner.users.contains_key(&user.name) {
                inner.users.insert(user.name.clone(), user.clone());
                counts.users += 1;
            }
        }
        for TokenRecord { token, digest } in &records.tokens {
            if !inner
                .tokens
                .iter()
                .any(|(t, d)| t.id == token.id || d == digest)
            {
                inner.tokens.push((token.clone(), digest.clone()));
                counts.tokens += 1;
            }
        }
        for schedule in &records.schedules {
            if !inner.schedules.iter().any(|s| s.id == schedule.id) {
                inner.schedules.push(schedule.clone());
                counts.schedules += 1;
            }
        }
        for MarkRecord { mark, .. } in &records.marks {
            if !inner.schedule_marks.contains_key(&mark.key) {
                inner.schedule_marks.insert(mark.key.clone(), mark.clone());
                counts.schedule_marks += 1;
            }
        }
        for StateRecord {
            flow, key, value, ..
        } in &records.state
        {
            let values = inner.state.entry(flow.clone()).or_default();
            if !values.contains_key(key) {
                values.insert(key.clone(), value.clone());
                counts.state_keys += 1;
            }
        }
        if let Some(key) = &records.node_key
            && inner.node_key.is_none()
        {
            inner.node_key = Some(key.clone());
            counts.node_keys = 1;
        }
        if counts.schedules + counts.schedule_marks > 0 {
            inner.schedule_changes += 1;
        }
        Ok(counts)
    }
}

//! The in-memory queue: admission under concurrency rules, claims with leases, cancel
//! requests and held concurrency keys.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Inner, MemoryStore};
use crate::store::{
    Admission, Admitted, Decision, Fence, LeaseState, LockInfo, LockStore, QueueStore, Run,
    RunError, RunId, RunStatus, StoreError,
};

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

impl Inner {
    /// Queued or running runs holding `key` (not freed by hand), oldest first.
    fn holders(&self, key: &str) -> Vec<&Run> {
        let mut holders: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running))
            .filter(|r| r.concurrency_key.as_deref() == Some(key))
            .filter(|r| !self.lock_released.contains(&r.id))
            .collect();
        holders.sort_by_key(|r| (r.created_at, r.id));
        holders
    }

    /// How many running runs hold `key` (not freed by hand).
    fn running_with(&self, key: &str) -> usize {
        self.runs
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .filter(|r| r.concurrency_key.as_deref() == Some(key))
            .filter(|r| !self.lock_released.contains(&r.id))
            .count()
    }

    /// Running runs holding a key (not freed by hand), oldest first.
    fn held(&self) -> Vec<&Run> {
        let mut held: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Running && r.concurrency_key.is_some())
            .filter(|r| !self.lock_released.contains(&r.id))
            .collect();
        held.sort_by_key(|r| (r.started_at, r.created_at, r.id));
        held
    }

    /// Cancels the queued-or-running holders of `key` in favour of `by`: queued ones end at
    /// once, running ones are marked for their node.
    fn replace_holders(&mut self, key: &str, by: RunId) -> Vec<RunId> {
        let ids: Vec<RunId> = self.holders(key).iter().map(|r| r.id).collect();
        let now = Utc::now();
        for id in &ids {
            let Some(run) = self.runs.iter_mut().find(|r| r.id == *id) else {
                continue;
            };
            if run.status == RunStatus::Queued {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(now);
                run.error = Some(RunError {
                    step: None,
                    message: format!("replaced by run {by}"),
                });
            } else {
                self.cancel_requested.insert(*id);
            }
        }
        ids
    }

    /// Records an admitted run as `queued`.
    fn create(&mut self, run: &Run, admission: &Admission, limit: Option<u32>) -> Run {
        let mut run = run.clone();
        run.status = RunStatus::Queued;
        if let Some(limit) = limit {
            self.limits.insert(run.id, limit);
        }
        if let Some(key) = &admission.idempotency_key {
            self.idempotency
                .insert((run.flow.clone(), key.clone()), run.id);
        }
        self.runs.push(run.clone());
        run
    }

    pub(super) fn admit(
        &mut self,
        run: &Run,
        admission: &Admission,
    ) -> Result<Admitted, StoreError> {
        if self.runs.iter().any(|r| r.id == run.id) {
            return Err(StoreError::Conflict {
                what: "run id".to_owned(),
            });
        }
        if let Some(key) = &admission.idempotency_key {
            let earlier = self
                .idempotency
                .get(&(run.flow.clone(), key.clone()))
                .and_then(|id| self.runs.iter().find(|r| r.id == *id));
            if let Some(earlier) = earlier {
                return Ok(Admitted::Existing(earlier.clone()));
            }
        }
        let holders = match &run.concurrency_key {
            Some(key) if admission.needs_holders(run) => {
                let holders = self.holders(key);
                let count = u64::try_from(holders.len()).unwrap_or(u64::MAX);
                holders.first().map(|oldest| ((*oldest).clone(), count))
            }
            _ => None,
        };
        Ok(
            match admission.decide(run, holders.as_ref().map(|(r, n)| (r, *n))) {
                Decision::Create { limit } => Admitted::Created(self.create(run, admission, limit)),
                Decision::Refuse(answer) => *answer,
                Decision::Replace { limit } => {
                    let key = run.concurrency_key.clone().unwrap_or_default();
                    let cancelled = self.replace_holders(&key, run.id);
                    let run = self.create(run, admission, Some(limit));
                    Admitted::Replaced { run, cancelled }
                }
            },
        )
    }

    /// Whether a claim may start `run` now, counting the runs of the batch so far; `full`
    /// holds the keys this claim may start no more runs of. A key's runs start in order: once
    /// one may not start, or one fills the key, the later ones wait too.
    fn may_start(&self, run: &Run, claimed: &[Run], full: &mut HashSet<String>) -> bool {
        let (Some(key), Some(&limit)) = (&run.concurrency_key, self.limits.get(&run.id)) else {
            return true;
        };
        if full.contains(key) {
            return false;
        }
        let in_batch = claimed
            .iter()
            .filter(|r| r.concurrency_key.as_ref() == Some(key))
            .count();
        let holders = self.running_with(key) + in_batch;
        let limit = limit as usize;
        if holders + 1 >= limit {
            full.insert(key.clone());
        }
        holders < limit
    }
}

#[async_trait]
impl QueueStore for MemoryStore {
    async fn admit(&self, run: &Run, admission: &Admission) -> Result<Admitted, StoreError> {
        let admitted = self.lock().admit(run, admission)?;
        if matches!(admitted, Admitted::Created(_) | Admitted::Replaced { .. }) {
            self.wake();
        }
        Ok(admitted)
    }

    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError> {
        let mut inner = self.lock();
        let now = Utc::now();
        let mut queued: Vec<usize> = (0..inner.runs.len())
            .filter(|&i| inner.runs[i].status == RunStatus::Queued)
            .collect();
        queued.sort_by_key(|&i| (inner.runs[i].created_at, inner.runs[i].id));
        let mut chosen: Vec<Run> = Vec::new();
        let mut full = HashSet::new();
        for i in queued {
            if chosen.len() >= limit as usize {
                break;
            }
            if inner.may_start(&inner.runs[i], &chosen, &mut full) {
                chosen.push(inner.runs[i].clone());
            }
        }
        let mut claimed = Vec::with_capacity(chosen.len());
        for pick in chosen {
            let Some(run) = inner.runs.iter_mut().find(|r| r.id == pick.id) else {
                continue;
            };
            run.status = RunStatus::Running;
            run.node = Some(node.to_owned());
            run.generation += 1;
            run.started_at.get_or_insert(now);
            let run = run.clone();
            inner.lock_released.remove(&run.id);
            inner
                .leases
                .insert(run.id, (node.to_owned(), lease_end(lease)));
            claimed.push(run);
        }
        Ok(claimed)
    }

    async fn insert_owned(&self, run: &Run, lease: Duration) -> Result<Run, StoreError> {
        let mut run = run.clone();
        run.status = RunStatus::Running;
        run.generation = 1;
        run.started_at.get_or_insert_with(Utc::now);
        let mut inner = self.lock();
        if inner.runs.iter().any(|r| r.id == run.id) {
            return Err(StoreError::Conflict {
                what: "run id".to_owned(),
            });
        }
        let node = run.node.clone().unwrap_or_default();
        inner.leases.insert(run.id, (node, lease_end(lease)));
        inner.runs.push(run.clone());
        Ok(run)
    }

    async fn renew(&self, fence: &Fence, lease: Duration) -> Result<LeaseState, StoreError> {
        let mut inner = self.lock();
        if inner.held_mut(fence).is_none() {
            return Ok(LeaseState::Lost);
        }
        let cancel = inner.cancel_requested.contains(&fence.run);
        match inner.leases.get_mut(&fence.run) {
            Some((_, until)) => {
                *until = lease_end(lease);
                Ok(if cancel {
                    LeaseState::CancelRequested
                } else {
                    LeaseState::Held
                })
            }
            None => Ok(LeaseState::Lost),
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

    async fn requeue(&self, fence: &Fence) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let id = &fence.run;
        let Some(run) = inner.held_mut(fence) else {
            return Ok(false);
        };
        run.status = RunStatus::Queued;
        run.node = None;
        run.started_at = None;
        inner.leases.remove(id);
        inner.lock_released.remove(id);
        drop(inner);
        self.wake();
        Ok(true)
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let mut inner = self.lock();
        let Some(index) = inner.runs.iter().position(|r| r.id == *id) else {
            return Ok(None);
        };
        match inner.runs[index].status {
            RunStatus::Queued => {
                let run = &mut inner.runs[index];
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(Utc::now());
                run.error = Some(RunError {
                    step: None,
                    message: "cancelled".to_owned(),
                });
            }
            RunStatus::Running => {
                inner.cancel_requested.insert(*id);
            }
            _ => {}
        }
        Ok(Some(inner.runs[index].clone()))
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        let queued = inner
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Queued)
            .count();
        Ok(u64::try_from(queued).unwrap_or(u64::MAX))
    }

    async fn wait_for_work(&self, timeout: Duration) -> Result<(), StoreError> {
        // Elapsing is an answer too: the caller polls again.
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
        Ok(())
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .held()
            .into_iter()
            .map(|r| LockInfo {
                key: r.concurrency_key.clone().unwrap_or_default(),
                run_id: r.id,
                flow: r.flow.clone(),
                status: r.status,
                since: r.started_at,
                node: r.node.clone(),
            })
            .collect())
    }

    async fn release_lock(&self, key: &str) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<RunId> = inner
            .held()
            .into_iter()
            .filter(|r| r.concurrency_key.as_deref() == Some(key))
            .map(|r| r.id)
            .collect();
        inner.lock_released.extend(ids.iter().copied());
        drop(inner);
        if !ids.is_empty() {
            self.wake();
        }
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }

    async fn release_all_locks(&self) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<RunId> = inner.held().into_iter().map(|r| r.id).collect();
        inner.lock_released.extend(ids.iter().copied());
        drop(inner);
        if !ids.is_empty() {
            self.wake();
        }
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }
}

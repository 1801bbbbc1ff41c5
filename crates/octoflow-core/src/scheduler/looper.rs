//! The scheduler's loop: take up changes, fire what is due, sleep until the next tick or a
//! change — on the node that leads the schedules (one of the nodes sharing a store; the only
//! one when a single process uses it).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::table::Table;
use super::{Fired, Published, Scheduler};
use crate::engine::RunRequest;
use crate::store::{Admitted, Fire, TriggerInfo};

/// Ticks of one schedule fired in one round; a long `catchup: all` goes on in the next
/// rounds, so it never holds up the other schedules for long.
const TICKS_PER_ROUND: usize = 100;
/// Ticks fired in one store transaction: a round of many due ticks costs a few commits, not
/// one each.
const FIRES_PER_TRANSACTION: usize = 250;
/// How long a schedule whose fire failed in the store waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the loop reads the store's count of schedule changes, to take up what another
/// node (or process) changed; its own changes wake it at once.
const CHANGES_EVERY: Duration = Duration::from_secs(5);
/// How often the loop asks the store whether this node fires the schedules (see
/// [`lead_schedules`](crate::store::ScheduleStore::lead_schedules)): when the node that
/// fired them dies, another takes over within this long.
const LEAD_CHECK: Duration = Duration::from_secs(5);
/// How long before a tick the loop wakes to make its runs (params, ids, records to write),
/// so that at the tick itself only the store's write is left.
const PREPARE_AHEAD: chrono::TimeDelta = chrono::TimeDelta::milliseconds(20);

/// What came of one schedule's due ticks.
enum Outcome {
    /// Every tick was handled; wait for the one after `last`.
    Done { last: DateTime<Utc> },
    /// The store failed at `tick` (the ticks before it were handled); try it again later.
    Retry { tick: DateTime<Utc> },
}

pub(super) struct Looper {
    scheduler: Scheduler,
    settle: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    table: Table,
}

impl Looper {
    pub(super) fn new(
        scheduler: Scheduler,
        settle: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) -> Self {
        Self {
            scheduler,
            settle,
            table: Table::default(),
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let inner = self.scheduler.inner.clone();
        let mut flows = inner.library.subscribe();
        let mut flows_open = true;
        let mut dirty = true;
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut reload_retry: Option<DateTime<Utc>> = None;
        let store = inner.service.store().clone();
        let mut changes_seen = store.schedule_changes().await.unwrap_or_default();
        let mut check_changes_at = inner.clock.now() + CHANGES_EVERY;
        let mut leading = false;
        let mut check_lead_at = inner.clock.now();
        tracing::info!("Scheduler started.");
        loop {
            if check_lead_at <= inner.clock.now() {
                check_lead_at = inner.clock.now() + LEAD_CHECK;
                let lead = self.ask_lead(leading).await;
                dirty |= lead && !leading;
                leading = lead;
            }
            if dirty {
                dirty = false;
                reload_retry = match self.reload().await {
                    // Another node fires: its ticks, not this table's, are the next ones; views
                    // work them out from the store.
                    Ok(()) if !leading => {
                        *self.scheduler.published() = None;
                        None
                    }
                    Ok(()) => None,
                    Err(error) => {
                        tracing::warn!(error = %crate::error::chain(&error), "Cannot read the schedules; retrying.");
                        Some(inner.clock.now() + RETRY_AFTER)
                    }
                };
            }
            if leading {
                self.fire_due().await;
            }
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
            let prepare_at = self
                .table
                .earliest()
                .filter(|_| leading)
                .map(|tick| tick - PREPARE_AHEAD);
            let wake = [
                prepare_at,
                reload_retry,
                Some(check_changes_at),
                Some(check_lead_at),
            ]
            .into_iter()
            .flatten()
            .min();
            let clock = inner.clock.clone();
            let sleep = async move {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sleep => {
                    let now = inner.clock.now();
                    if reload_retry.is_some_and(|at| at <= now) {
                        dirty = true;
                    }
                    if check_changes_at <= now {
                        check_changes_at = now + CHANGES_EVERY;
                        match store.schedule_changes().await {
                            Ok(changes) if changes != changes_seen => {
                                changes_seen = changes;
                                dirty = true;
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(error = %crate::error::chain(&error), "Cannot read the count of schedule changes.");
                            }
                        }
                    }
                }
                changed = flows.changed(), if flows_open => {
                    flows_open = changed.is_ok();
                    dirty = true;
                }
                () = inner.changed.notified() => dirty = true,
                Some(done) = self.settle.recv() => {
                    waiting.push(done);
                    dirty = true;
                }
            }
        }
        tracing::info!("Scheduler stopped.");
    }

    /// Whether this node fires the schedules now (it did: `leading`). A node that starts to
    /// takes them up afresh, as after downtime: each schedule catches up from its last fire
    /// as its `catchup` says (the caller reloads).
    async fn ask_lead(&mut self, leading: bool) -> bool {
        let store = self.scheduler.inner.service.store();
        let lead = store.lead_schedules().await.unwrap_or_else(|error| {
            tracing::warn!(error = %crate::error::chain(&error), "Cannot tell whether this node fires the schedules; it does not for now.");
            false
        });
        if lead && !leading {
            self.table = Table::default();
        } else if leading && !lead {
            tracing::info!("Another node fires the schedules now.");
        }
        metrics::gauge!("octoflow_scheduler_leading").set(if lead { 1.0 } else { 0.0 });
        lead
    }

    /// Reads the definitions and marks, updates the table and publishes it.
    async fn reload(&mut self) -> Result<(), crate::store::StoreError> {
        let (defs, marks) = self.scheduler.defs().await?;
        let marks: HashMap<_, _> = marks.into_iter().map(|m| (m.key.clone(), m)).collect();
        self.table
            .reload(defs, &marks, self.scheduler.inner.clock.now());
        let published = self
            .table
            .entries
            .values()
            .map(|e| {
                let p = Published {
                    flow: e.def.flow.clone(),
                    next: e.next,
                };
                (e.def.key.clone(), p)
            })
            .collect();
        *self.scheduler.published() = Some(published);
        Ok(())
    }

    /// Fires every tick due now or within [`PREPARE_AHEAD`], each schedule's in order, many
    /// per store transaction: makes their runs first, then writes each transaction's fires
    /// once the latest tick in it has come.
    async fn fire_due(&mut self) {
        let inner = self.scheduler.inner.clone();
        let due = self
            .table
            .due(inner.clock.now() + PREPARE_AHEAD, TICKS_PER_ROUND);
        if due.is_empty() {
            return;
        }
        let mut outcomes: HashMap<String, Outcome> = HashMap::with_capacity(due.len());
        let mut fires: Vec<Fire> = Vec::new();
        for (key, ticks) in due {
            let Some(&last) = ticks.last() else {
                continue;
            };
            outcomes.insert(key.clone(), Outcome::Done { last });
            let Some(entry) = self.table.entries.get(&key) else {
                continue;
            };
            let def = &entry.def;
            let Some(flow) = inner.library.flow(&def.flow) else {
                tracing::warn!(schedule = %key, flow = %def.flow, "Schedule tick skipped: the flow has no valid version.");
                continue;
            };
            for tick in ticks {
                let mut request = RunRequest::new(def.schedule.params.clone());
                request.trigger = TriggerInfo {
                    kind: "schedule".to_owned(),
                    detail: json!({
                        "schedule": key,
                        "tick": tick.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    }),
                };
                match inner.service.schedule_fire(&flow, request, &key, tick) {
                    Ok(fire) => fires.push(fire),
                    Err(error) => {
                        tracing::warn!(schedule = %key, flow = %def.flow, tick = %tick, error = %error, "Schedule tick skipped.");
                    }
                }
            }
        }
        // By tick, each schedule's still in order: a transaction waits for no later tick than
        // its own.
        fires.sort_by_key(|fire| fire.tick);
        let mut failed = false;
        for batch in fires.chunks_mut(FIRES_PER_TRANSACTION) {
            if let Some(latest) = batch.last().map(|fire| fire.tick)
                && latest > inner.clock.now()
            {
                inner.clock.sleep_until(latest).await;
            }
            let now = Utc::now();
            for fire in batch.iter_mut() {
                fire.run.created_at = now;
            }
            if !failed {
                match inner.service.start_scheduled(batch).await {
                    Ok(answers) => {
                        self.report(batch, &answers);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(error = %crate::error::chain(&error), "Schedule ticks not fired; retrying.");
                        failed = true;
                    }
                }
            }
            // This batch and the ones after it wait; each schedule retries its first unfired
            // tick.
            for fire in batch {
                if let Some(outcome @ Outcome::Done { .. }) = outcomes.get_mut(&fire.key) {
                    *outcome = Outcome::Retry { tick: fire.tick };
                }
            }
        }
        self.advance(outcomes);
    }

    /// Tells subscribers and metrics of the ticks that fired.
    fn report(&self, batch: &[Fire], answers: &[Option<Admitted>]) {
        let inner = &self.scheduler.inner;
        let at = inner.clock.now();
        for (fire, answer) in batch.iter().zip(answers) {
            let Some(admitted) = answer else {
                tracing::debug!(schedule = %fire.key, tick = %fire.tick, "Tick already fired, or the schedule is paused or gone.");
                continue;
            };
            let run = match admitted {
                Admitted::Created(run) | Admitted::Replaced { run, .. } => Some(run.id),
                Admitted::Existing(_) | Admitted::Deduplicated(_) | Admitted::Skipped(_) => None,
            };
            let lateness = (at - fire.tick).to_std().unwrap_or_default();
            metrics::histogram!("octoflow_schedule_lateness_seconds")
                .record(lateness.as_secs_f64());
            tracing::debug!(schedule = %fire.key, flow = %fire.run.flow, tick = %fire.tick, run_id = ?run, "Schedule fired.");
            if let Some(fired) = inner.fired.get() {
                let _ = fired.send(Fired {
                    key: fire.key.clone(),
                    tick: fire.tick,
                    at,
                    run,
                });
            }
        }
    }

    /// Moves each fired schedule on to its next tick.
    fn advance(&mut self, outcomes: HashMap<String, Outcome>) {
        let now = self.scheduler.inner.clock.now();
        let mut published = self.scheduler.published();
        for (key, outcome) in outcomes {
            let Some(entry) = self.table.entries.get_mut(&key) else {
                continue;
            };
            match outcome {
                Outcome::Done { last } => {
                    entry.next = entry.cadence.after(last);
                    entry.retry_at = None;
                }
                Outcome::Retry { tick } => {
                    entry.next = Some(tick);
                    entry.retry_at = Some(now + RETRY_AFTER);
                }
            }
            if let Some(p) = published.as_mut().and_then(|p| p.get_mut(&key)) {
                p.next = entry.next;
            }
        }
    }
}

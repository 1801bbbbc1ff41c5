//! A node of the service: runs accepted through the queue and its concurrency rules, workers
//! that claim and run them with a renewed lease, cancel and retry, live feeds and callbacks.
//!
//! The HTTP server and the triggers talk to a [`Service`]; nothing here knows HTTP.

mod ended;
mod feed;
mod notices;
mod retention;
mod slots;
mod step_metrics;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::engine::{CallbackHub, CallbackReport, CallbackSigner, CallbackStatus};
pub use feed::{EndWatch, RemoteFollow, RunFeed};

use crate::engine::{AcceptError, ContextError, Engine, FlowCatalog, RunRequest};
use crate::flow::{ConcurrencyPolicy, Flow};
use crate::store::{
    Admission, Admitted, Fire, LogLine, LogStream, Run, RunId, RunStatus, Store, StoreError,
    TriggerInfo,
};

/// Settings of a node's workers.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Runs this node runs at once.
    pub workers: usize,
    /// How long running runs may go on after a shutdown begins (default 30 s).
    pub shutdown_grace: Duration,
    /// Where tracker documents are written, when set.
    pub tracker_dir: Option<PathBuf>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            shutdown_grace: Duration::from_secs(30),
            tracker_dir: None,
        }
    }
}

/// Why a retry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The run is still queued or running.
    #[error("run {0} has not ended yet")]
    NotEnded(RunId),
    /// Its flow is no longer known.
    #[error("flow `{0}` no longer exists")]
    FlowGone(String),
    /// The new run was not accepted.
    #[error(transparent)]
    Accept(#[from] AcceptError),
}

/// One node: accepts runs, runs them with its workers, cancels and retries them.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    catalog: Arc<dyn FlowCatalog>,
    config: ServiceConfig,
    feed: Arc<RunFeed>,
    /// Cancel tokens of the runs running on this node.
    local: Mutex<HashMap<RunId, CancellationToken>>,
    /// The flow triggers told of each run that ends here (see `ended.rs`).
    flow_triggers: crate::triggers::FlowTriggers,
    /// The worker slots, shared by the dispatcher and the runs started here.
    slots: Arc<slots::Slots>,
    /// Their queue of ended runs, until the triggers start and take it.
    ended_queue: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::triggers::Ended>>>,
}

impl Service {
    /// A node running `engine`'s runs, finding their flows in `catalog`.
    pub fn new(engine: Engine, catalog: Arc<dyn FlowCatalog>, config: ServiceConfig) -> Self {
        let (flow_triggers, ended_queue) = crate::triggers::FlowTriggers::new();
        Self {
            inner: Arc::new(Inner {
                engine,
                catalog,
                feed: Arc::default(),
                slots: slots::Slots::new(config.workers.max(1)),
                local: Mutex::new(HashMap::new()),
                flow_triggers,
                ended_queue: Mutex::new(Some(ended_queue)),
                config,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.inner.engine.store()
    }

    /// The live feed of the runs running here.
    pub fn feed(&self) -> &Arc<RunFeed> {
        &self.inner.feed
    }

    /// Follows a run running on this node (see [`RunFeed::follow`]).
    pub fn follow(&self, id: &RunId) -> Option<watch::Receiver<u64>> {
        self.inner.feed.follow(id)
    }

    /// Accepts a run of `flow` under its concurrency rule (SPEC §8) and the idempotency key.
    pub async fn start(
        &self,
        flow: &Flow,
        request: RunRequest,
        idempotency_key: Option<String>,
    ) -> Result<Admitted, AcceptError> {
        let run = self.inner.engine.new_run(flow, request)?;
        self.admit(flow, &run, admission_of(flow, idempotency_key))
            .await
    }

    /// Accepts a run whose caller waits for its end (a webhook with `wait: true`): as
    /// [`start`](Self::start), but when no rule holds it back — no concurrency limit, no
    /// idempotency key — and one of this node's worker slots is free, the run is recorded
    /// running on this node and runs here at once. No claim, no wake-up and no notice to
    /// another node stands between the caller and the run's end. A run started here comes
    /// with the wait for its end, begun before the run could end: the caller need not read
    /// the run to learn whether it ended already, and hears of its end with its record.
    ///
    /// A run of a [side-effect-free](Flow::side_effect_free) flow, without uploaded files
    /// and with no tracker files to write, is not even recorded first: it is recorded once,
    /// at its end, before its caller hears of it (or `running` as soon as it writes
    /// anything else or outlasts 100 ms; see [`Engine::execute_deferred`]). Its caller's
    /// answer still comes only after the run is in the store.
    pub async fn start_waited(
        &self,
        flow: &Flow,
        request: RunRequest,
        idempotency_key: Option<String>,
    ) -> Result<Waited, AcceptError> {
        let request_has_files = request.has_files;
        let mut run = self.inner.engine.new_run(flow, request)?;
        let admission = admission_of(flow, idempotency_key);
        let unruled = admission.idempotency_key.is_none()
            && (run.concurrency_key.is_none() || admission.policy == ConcurrencyPolicy::Allow);
        let Some(slot) = unruled.then(|| self.inner.slots.take_for_here()).flatten() else {
            return Ok(Waited::Admitted(Box::new(
                self.admit(flow, &run, admission).await?,
            )));
        };
        let engine = &self.inner.engine;
        let deferred = !request_has_files
            && self.inner.config.tracker_dir.is_none()
            && flow.side_effect_free();
        run = engine.owned_here(run);
        if !deferred {
            run = self
                .store()
                .insert_owned(&run, engine.config().lease)
                .await?;
        }
        count_admission(&flow.name, "created");
        self.track_accepted(flow, &run).await;
        let id = run.id;
        let end = self.inner.feed.watch_end_here(id);
        let started = slots::HandOff {
            run,
            slot,
            recorded: !deferred,
        };
        if let Some(mut run) = self.inner.slots.hand_off(started) {
            // The workers stopped meanwhile: another worker (here after a restart, or on
            // another node) takes it from the queue.
            let fence = run.fence();
            run.status = RunStatus::Queued;
            (run.node, run.started_at, run.generation) = (None, None, 0);
            if deferred {
                return Ok(Waited::Admitted(Box::new(
                    self.store().admit(&run, &admission).await?,
                )));
            }
            self.store().requeue(&fence).await?;
            return Ok(Waited::Admitted(Box::new(Admitted::Created(run))));
        }
        Ok(Waited::Here(id, end))
    }

    /// Admits `run` under `admission`.
    async fn admit(
        &self,
        flow: &Flow,
        run: &Run,
        admission: Admission,
    ) -> Result<Admitted, AcceptError> {
        let admitted = self.store().admit(run, &admission).await?;
        self.admitted(&flow.name, &admitted);
        if let Admitted::Created(run) | Admitted::Replaced { run, .. } = &admitted {
            self.track_accepted(flow, run).await;
        }
        Ok(admitted)
    }

    /// With `tracker_dir` set, a new run's tracker file exists from its acceptance on.
    async fn track_accepted(&self, flow: &Flow, run: &Run) {
        let Some(dir) = &self.inner.config.tracker_dir else {
            return;
        };
        let (dir, run) = (dir.clone(), run.clone());
        let steps: Vec<String> = flow.steps.iter().map(|s| s.name.clone()).collect();
        let written =
            tokio::task::spawn_blocking(move || crate::tracker::write_accepted(&dir, &run, &steps))
                .await;
        if let Ok(Err(error)) = written {
            tracing::warn!(error = %error, "Cannot write tracker file.");
        }
    }

    /// Tick `tick` of the schedule `key`, ready to fire: a new run of `flow` (its params
    /// checked) under the flow's concurrency rule.
    pub fn schedule_fire(
        &self,
        flow: &Flow,
        request: RunRequest,
        key: &str,
        tick: chrono::DateTime<chrono::Utc>,
    ) -> Result<Fire, AcceptError> {
        Ok(Fire {
            key: key.to_owned(),
            tick,
            run: self.inner.engine.new_run(flow, request)?,
            admission: admission_of(flow, None),
        })
    }

    /// Fires schedule ticks (SPEC §7): each tick is recorded and its run admitted in one
    /// store transaction, so a tick fires at most once. One answer per tick: `None` when it
    /// did not fire (already fired, or the schedule is paused or gone); a `skip` rule's
    /// refusal still counts as fired.
    pub async fn start_scheduled(
        &self,
        fires: &[Fire],
    ) -> Result<Vec<Option<Admitted>>, StoreError> {
        let answers = self.store().fire(fires).await?;
        for (fire, answer) in fires.iter().zip(&answers) {
            if let Some(admitted) = answer {
                self.admitted(&fire.run.flow, admitted);
                if self.inner.config.tracker_dir.is_some()
                    && let Admitted::Created(run) | Admitted::Replaced { run, .. } = admitted
                    && let Ok(flow) = self.inner.catalog.by_name(&fire.run.flow).await
                {
                    self.track_accepted(&flow, run).await;
                }
            }
        }
        Ok(answers)
    }

    /// What follows an admission: runs replaced by the new one are cancelled, and the
    /// outcome is counted.
    fn admitted(&self, flow: &str, admitted: &Admitted) {
        if let Admitted::Replaced { cancelled, .. } = admitted {
            for id in cancelled {
                if !self.cancel_local(id) {
                    // Cancelled while queued: it ended now, without a worker.
                    self.run_ended_by_id(*id);
                }
            }
        }
        let outcome = match admitted {
            Admitted::Created(_) | Admitted::Replaced { .. } => "created",
            Admitted::Existing(_) => "existing",
            Admitted::Deduplicated(_) => "deduplicated",
            Admitted::Skipped(_) => "skipped",
        };
        count_admission(flow, outcome);
    }

    /// Cancels a run: a queued one ends at once, a running one is stopped (its processes
    /// killed) by the node running it. Returns the run as it is now.
    pub async fn cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let run = self.store().request_cancel(id).await?;
        match run.as_ref().map(|r| r.status) {
            // Another node runs it: tell it now (its lease renewal would, later).
            Some(RunStatus::Running) if !self.cancel_local(id) => {
                self.inner.feed.send(crate::store::Notice::Cancel(*id));
            }
            // A queued run ends at once, without a worker: tell those waiting for it.
            Some(status) if status.is_final() => {
                self.inner.feed.ended(id, run.clone().map(Arc::new));
                if let Some(run) = run.as_ref().filter(|r| r.started_at.is_none()) {
                    self.run_ended(run);
                }
            }
            _ => {}
        }
        Ok(run)
    }

    /// Cancels a run running on this node; false when it does not run here.
    pub(crate) fn cancel_local(&self, id: &RunId) -> bool {
        let local = self
            .inner
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        local.get(id).map(CancellationToken::cancel).is_some()
    }

    /// Starts a new run with the params of an ended one. With `from_failed`, the new run
    /// reuses the results of the steps that succeeded and starts at the failed one.
    pub async fn retry(&self, run: &Run, from_failed: bool) -> Result<Admitted, RetryError> {
        if !run.status.is_final() {
            return Err(RetryError::NotEnded(run.id));
        }
        let flow = self
            .inner
            .catalog
            .by_name(&run.flow)
            .await
            .map_err(|_| RetryError::FlowGone(run.flow.clone()))?;
        let mut request = RunRequest::new(run.params.as_object().cloned().unwrap_or_default());
        request.trigger = TriggerInfo {
            kind: "retry".to_owned(),
            detail: json!({ "run_id": run.id.to_string(), "from_failed": from_failed }),
        };
        request.input = input_of(run);
        Ok(self.start(&flow, request, None).await?)
    }

    /// Records an external job's report on a run (SPEC §11.4): progress, a log line, and, for
    /// a final status, the end of the run's `wait: callback` step. Returns the run, or `None`
    /// when there is no such run.
    pub async fn callback(
        &self,
        id: &RunId,
        report: &CallbackReport,
    ) -> Result<Option<Run>, StoreError> {
        let store = self.store();
        let Some(mut run) = store.run(id).await? else {
            return Ok(None);
        };
        let redactor = self.inner.engine.redactor();
        if let Some(progress) = &report.progress {
            let mut progress = progress.clone();
            progress.message = progress.message.map(|m| redactor.text(&m).into_owned());
            self.inner.feed.progress(id, &progress);
            store.set_progress(id, &progress).await?;
            run.progress = Some(progress);
            // Those following the run's log hear of it (a `progress` event).
            self.inner.feed.touch(id);
        }
        if let Some(message) = &report.message {
            let line = LogLine {
                run_id: *id,
                step: report.step.clone().unwrap_or_else(|| "callback".to_owned()),
                attempt: 1,
                ts: chrono::Utc::now(),
                stream: LogStream::Engine,
                line: format!("callback: {}", redactor.text(message)),
                seq: 0,
            };
            store.append_logs(std::slice::from_ref(&line)).await?;
            self.inner.feed.touch(id);
        }
        if matches!(
            report.status,
            Some(CallbackStatus::Succeeded | CallbackStatus::Failed)
        ) {
            let mut report = report.clone();
            report.data = report.data.map(|d| redactor.value(&d));
            report.message = report.message.map(|m| redactor.text(&m).into_owned());
            self.inner.engine.callback_hub().deliver(id, &report);
        }
        Ok(Some(run))
    }

    /// Merges `values` into the context (`data`) of a running run, as a JSON merge patch
    /// (see [`Engine::update_context`]); no values: its context as it is now. Returns the
    /// context after it.
    ///
    /// # Errors
    /// When the run is queued or ended, runs on another node, or a key is the engine's.
    pub async fn update_context(
        &self,
        run: &Run,
        values: Map<String, Value>,
    ) -> Result<Value, ContextError> {
        crate::engine::check_context_keys(&values)?;
        match run.status {
            RunStatus::Queued => Err(ContextError::NotStarted(run.id)),
            status if status.is_final() => Err(ContextError::Ended(run.id, status)),
            _ => self.inner.engine.update_context(&run.id, values).await,
        }
    }

    /// Hands back the runs left `running` by nodes that are gone (`is_alive` says which
    /// node names still live): re-queued when their flow says `on_interrupt: retry`, else
    /// ended `failed` with error `interrupted`. Returns how many.
    pub async fn recover(&self, is_alive: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        let mut count = 0;
        for run in self.store().running_runs().await? {
            if !run.node.as_deref().is_some_and(&is_alive) {
                worker::hand_back(self, &run).await?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Runs this node's workers until `shutdown` is cancelled and the running runs have ended
    /// (stop claiming, let running runs go on for `shutdown_grace`, then cancel them).
    pub async fn run_workers(&self, shutdown: CancellationToken) {
        worker::Workers::new(self.clone()).run(shutdown).await;
    }
}

/// What [`Service::start_waited`] did with a run.
#[derive(Debug)]
pub enum Waited {
    /// Started on this node: its id, and the wait for its end, begun before it could end.
    Here(RunId, EndWatch),
    /// Admitted as [`Service::start`] admits a run: queued for a worker, or answered by
    /// another run (or refused) under the flow's rules.
    Admitted(Box<Admitted>),
}

/// Counts an admission by its outcome (`created`, `existing`, …).
fn count_admission(flow: &str, outcome: &'static str) {
    metrics::counter!("octoflow_runs_admitted_total", "flow" => flow.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// The admission rule of a new run of `flow`: its concurrency rule, or none.
fn admission_of(flow: &Flow, idempotency_key: Option<String>) -> Admission {
    match &flow.concurrency {
        Some(rule) => Admission {
            policy: rule.policy,
            limit: rule.limit.max(1),
            idempotency_key,
        },
        None => Admission {
            idempotency_key,
            ..Admission::allow()
        },
    }
}

/// The input a run was started with: its data as recorded before it ran, else its final
/// data without the engine's own keys.
fn input_of(run: &Run) -> Value {
    match run.data.get("__input__") {
        Some(input) => input.clone(),
        None => run.data.clone(),
    }
}

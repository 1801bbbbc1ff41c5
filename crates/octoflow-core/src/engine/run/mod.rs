//! One run from start to end: the step graph, halting, `finally_step`, `on_failure`, and
//! the final record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod data;
mod ending;

use super::context::{ContextPatch, Inbox, merge};
use super::graph::{Graph, Jump};
use super::recording::Recording;
use super::step::{Outcome, PRIVATE_RESULT, StepRunner, Visits};
use super::{Engine, Observer, RunEvent, lease, logs};
use crate::expr::Scope;
use crate::flow::{Flow, Step};
use crate::fs::FilesRoot;
use crate::step::{Control, RunInfo, StepServices};
use crate::store::{
    Fence, LogLine, LogStream, Run, RunError, RunId, RunStatus, StepRun, StepStatus, StoreError,
};
use ending::{final_status, skip_reason};

/// The most step records an unrecorded run keeps for its end; past it, the run and they are
/// written.
const MAX_HELD: usize = 32;

/// How the step graph ended.
struct GraphEnd {
    /// Why it stopped starting steps, if it halted.
    halt: Option<Halt>,
    /// The first failure.
    failure: Option<RunError>,
    /// Steps skipped because of a failure or a halt.
    skipped: Vec<usize>,
    /// Records of the last steps' attempts not yet written (see [`StepRunner::hold_records`]).
    held: Vec<StepRun>,
}

/// How the run's steps ended: what its record's end says.
struct StepsEnd {
    status: RunStatus,
    failure: Option<RunError>,
    /// An `exit` step's message.
    message: Option<String>,
    /// Step records not yet written, for the run's end.
    held: Vec<StepRun>,
}

/// Why the run stopped starting steps.
#[derive(Debug, Clone, PartialEq)]
enum Halt {
    Exit(String),
    /// A `goto: __end__`.
    End,
    Cancelled,
    TimedOut,
}

pub(super) struct Execution<'e> {
    engine: &'e Engine,
    flow: Arc<Flow>,
    run: Run,
    /// The run's right to be written by this executor.
    fence: Fence,
    /// Its record: in the store, or to be written (a deferred run).
    recording: Arc<Recording>,
    cancel: CancellationToken,
    observer: Option<Arc<dyn Observer>>,
    data: Arc<Map<String, Value>>,
    /// The keys of `data` that hold a `private` step's result: never written or shown.
    private_keys: HashSet<String>,
    names: Arc<BTreeMap<String, Value>>,
    /// How many `flow` steps deep this run is.
    depth: u32,
    /// A `flow_loop` child's 1-based position (`__loop_index__`).
    loop_index: Option<usize>,
    /// The files a child's parent may touch: the child may too.
    parent_files: Option<FilesRoot>,
    /// Results of steps that succeeded before, taken instead of running them again; `true`
    /// when they come from another run (and are recorded in this one).
    reused: (HashMap<String, Value>, bool),
}

impl<'e> Execution<'e> {
    pub(super) fn new(
        engine: &'e Engine,
        flow: Arc<Flow>,
        run: Run,
        cancel: CancellationToken,
        observer: Option<Arc<dyn Observer>>,
    ) -> Self {
        Self {
            engine,
            flow,
            fence: run.fence(),
            recording: Arc::new(Recording::stored(engine.store.clone(), engine.config.lease)),
            run,
            cancel,
            observer,
            data: Arc::default(),
            private_keys: HashSet::new(),
            names: Arc::default(),
            depth: 0,
            loop_index: None,
            parent_files: None,
            reused: (HashMap::new(), false),
        }
    }

    /// Makes this a run owned here but not recorded yet: recorded once, at its end, unless
    /// it writes anything before or outlasts a moment (see `recording.rs`); `record` is
    /// the run as it is to be recorded then, as it was started.
    pub(super) fn deferred(mut self, record: Arc<Run>) -> Self {
        self.recording = Arc::new(Recording::deferred(
            self.engine.store.clone(),
            self.engine.config.lease,
            record,
        ));
        self
    }

    /// Makes this the run of a `flow` (or `flow_loop`) step whose run may touch
    /// `parent_files`.
    pub(super) fn into_child(
        mut self,
        depth: u32,
        loop_index: Option<usize>,
        parent_files: FilesRoot,
    ) -> Self {
        self.depth = depth;
        self.loop_index = loop_index;
        self.parent_files = Some(parent_files);
        self
    }

    fn emit(&self, event: &RunEvent<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(event);
        }
    }

    fn scope(&self) -> Scope {
        Scope::builder()
            .shared_data(self.data.clone())
            .shared_names(self.names.clone())
            .build()
    }

    /// Makes the run's workspace and the names templates see. The run must be owned already
    /// (accepted by this engine or claimed): `running` under a generation.
    async fn start(&mut self) -> Result<(RunInfo, StepServices), StoreError> {
        if self.run.status != RunStatus::Running || self.run.generation == 0 {
            return Err(StoreError::Fenced { run: self.run.id });
        }
        let started_at = self.run.started_at.unwrap_or_else(Utc::now);
        // A flow can only reach its state by writing `state`; others skip the read.
        let state = if self.flow.source.contains("state") {
            self.engine.store.state(&self.flow.name).await?
        } else {
            Map::new()
        };
        let workdir = self.engine.config.files.run_dir(&self.run.id);
        // Writers into the workspace (uploads, spilled results, `file` steps) make it when
        // they write; a flow that names `run.workdir` gets it made first, for its commands.
        // Other runs never touch the disk for it.
        if self.flow.source.contains("workdir")
            && let Err(error) = tokio::fs::create_dir_all(&workdir).await
        {
            tracing::warn!(run_id = %self.run.id, error = %error, "Cannot create the run's workspace.");
        }
        let info = RunInfo {
            id: self.run.id,
            flow: self.flow.name.clone(),
            workdir: workdir.clone(),
            depth: self.depth,
        };
        let mut services: StepServices = (*self.engine.services).clone();
        // Steps may touch this run's workspace (and a child its parents'), no other run's.
        services.files = self
            .parent_files
            .as_ref()
            .unwrap_or(&services.files)
            .for_run(&workdir);
        if !self.flow.env.is_empty() {
            Arc::make_mut(&mut services.env)
                .extend(self.flow.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let names = [
            ("params", self.run.params.clone()),
            ("env", json!(*services.env)),
            ("state", Value::Object(state)),
            ("secrets", (*self.engine.secrets).clone()),
            (
                "run",
                json!({
                    "id": self.run.id.to_string(),
                    "flow": self.flow.name,
                    "trigger": self.run.trigger.kind,
                    "started_at": started_at.to_rfc3339(),
                    "callback_url": self.engine.callbacks.as_ref().and_then(|c| c.url(&self.run.id)),
                    "workdir": workdir.display().to_string(),
                }),
            ),
        ];
        self.names = Arc::new(
            names
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        );
        self.reused = self.reusable_results().await?;
        self.emit(&RunEvent::RunStarted(&self.run));
        self.data = Arc::new(self.initial_data());
        Ok((info, services))
    }

    /// The results this run may take instead of running steps again: its own succeeded
    /// steps when the flow says `resume: true` (a re-queued run), or those of the run it
    /// retries `from_failed`.
    async fn reusable_results(&self) -> Result<(HashMap<String, Value>, bool), StoreError> {
        let trigger = &self.run.trigger;
        let (source, other) = if trigger.kind == "retry"
            && trigger.detail.get("from_failed") == Some(&Value::Bool(true))
        {
            let source = trigger.detail.get("run_id").and_then(Value::as_str);
            match source.and_then(|s| s.parse::<RunId>().ok()) {
                Some(id) => (id, true),
                None => return Ok((HashMap::new(), false)),
            }
        } else if self.flow.resume {
            (self.run.id, false)
        } else {
            return Ok((HashMap::new(), false));
        };
        let mut results = HashMap::new();
        for step_run in self.engine.store.step_runs(&source).await? {
            let reusable = step_run.status == StepStatus::Succeeded
                && step_run
                    .result
                    .as_ref()
                    .is_none_or(|r| r.get("$file").is_none() && r.get(PRIVATE_RESULT).is_none());
            if reusable {
                results.insert(step_run.step, step_run.result.unwrap_or(Value::Null));
            } else {
                results.remove(&step_run.step);
            }
        }
        Ok((results, other))
    }

    /// Runs the run to its end. When the run turns out to be no longer this executor's
    /// ([`StoreError::Fenced`]), its steps are stopped and nothing more is written.
    pub(super) async fn run(self) -> Result<Run, StoreError> {
        let (id, cancel) = (self.run.id, self.cancel.clone());
        let result = self.run_to_end().await;
        if let Err(StoreError::Fenced { .. }) = &result {
            cancel.cancel();
            tracing::warn!(run_id = %id, "Run is no longer held by this executor; its steps were stopped.");
        }
        result
    }

    async fn run_to_end(mut self) -> Result<Run, StoreError> {
        // Open before the run is told started: whoever hears of the start can update it.
        let mut inbox = self.engine.context_hub().open(self.run.id);
        let (info, services) = self.start().await?;
        let store = &self.engine.store;
        let keeper = lease::keep(
            store.clone(),
            self.recording.clone(),
            (
                self.fence,
                self.engine.config.lease,
                self.engine.config.renew_every,
            ),
            self.cancel.clone(),
        );
        let (log_tx, log_rx) = logs::queue();
        let writer = logs::write(
            store.clone(),
            self.recording.clone(),
            self.engine.redactor.clone(),
            self.observer.clone(),
            log_rx,
        );
        let work = async move {
            // The lines are stored before the run's end is. The steps' future is large: boxed,
            // so that the task holding this one does not copy it around.
            let steps = Box::pin(self.run_steps(&info, &services, log_tx, &mut inbox));
            let (steps, ()) = tokio::join!(steps, writer);
            let StepsEnd {
                status,
                failure,
                message,
                held,
            } = steps?;
            self.finish(status, failure, message, &held).await
        };
        lease::keeping(keeper, work).await
    }

    /// Runs the step graph, then what its end calls for (`finally_step`, `on_failure`,
    /// `on_cancel`); every step's lines go to `logs`, dropped at the end.
    async fn run_steps(
        &mut self,
        info: &RunInfo,
        services: &StepServices,
        logs: mpsc::Sender<LogLine>,
        inbox: &mut Inbox,
    ) -> Result<StepsEnd, StoreError> {
        let recording = self.recording.clone();
        let run_token = self.cancel.child_token();
        let run_timed_out = AtomicBool::new(false);
        let observer = self.observer.clone();
        let visits = Visits::default();
        let runner = StepRunner {
            engine: self.engine,
            fence: self.fence,
            info,
            services,
            logs: &logs,
            token: &run_token,
            run_timed_out: &run_timed_out,
            observer: observer.as_ref(),
            flow_retry: self.flow.retry,
            hold_records: true,
            visits: &visits,
            recording: &recording,
        };

        let flow = self.flow.clone();
        let GraphEnd {
            halt,
            failure,
            skipped,
            mut held,
        } = self
            .run_graph(&runner, &flow, &run_token, &run_timed_out, inbox)
            .await?;
        let (mut status, mut failure) = final_status(halt.as_ref(), failure, &flow);
        if matches!(status, RunStatus::Failed | RunStatus::TimedOut) {
            self.write_held(&mut held).await?;
            // Recovery steps get their own token: the run's may be cancelled by its timeout.
            let token = self.cancel.child_token();
            let recovery = StepRunner {
                token: &token,
                hold_records: false,
                ..runner
            };
            self.run_recovery(&recovery, &flow, skipped, failure.as_ref(), status)
                .await?;
        }
        if self.cancel.is_cancelled() && status == RunStatus::Succeeded {
            status = RunStatus::Cancelled;
            failure = Some(RunError {
                step: None,
                message: "cancelled".to_owned(),
            });
        }
        if status == RunStatus::Cancelled && !flow.on_cancel.is_empty() {
            self.write_held(&mut held).await?;
            // The run's token is cancelled: the cleanup gets a token of its own (each step's
            // `timeout` still bounds it).
            let token = CancellationToken::new();
            let cleanup = StepRunner {
                token: &token,
                hold_records: false,
                ..runner
            };
            let error = json!({"step": null, "message": "cancelled", "kind": "cancelled"});
            self.run_after(&cleanup, &flow.on_cancel, &error).await?;
        }
        let message = match &halt {
            Some(Halt::Exit(m)) => Some(self.engine.redactor.text(m).into_owned()),
            _ => None,
        };
        Ok(StepsEnd {
            status,
            failure,
            message,
            held,
        })
    }

    /// Records the run's end, with the step records still held, in one store write.
    async fn finish(
        mut self,
        status: RunStatus,
        failure: Option<RunError>,
        message: Option<String>,
        held: &[StepRun],
    ) -> Result<Run, StoreError> {
        self.run.status = status;
        self.run.finished_at = Some(crate::store::now());
        self.run.error = failure;
        self.run.data = self.take_shown_data();
        self.run.message = message;
        self.recording.end(&self.fence, held, &self.run).await?;
        self.emit(&RunEvent::RunFinished(&self.run));
        Ok(self.run)
    }

    /// Writes step records held so far, in order — the run's own record first, if it is
    /// not written yet.
    async fn write_held(&self, held: &mut Vec<StepRun>) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        self.recording.ensure().await?;
        for record in held.drain(..) {
            self.engine
                .store
                .insert_step_run(&self.fence, &record)
                .await?;
        }
        Ok(())
    }

    /// Writes the step records held so far, as the graph goes on — but while the run is not
    /// recorded, keeps up to [`MAX_HELD`] of them for the one write at its end.
    async fn release_held(&self, held: &mut Vec<StepRun>) -> Result<(), StoreError> {
        if held.len() < MAX_HELD && self.recording.is_deferred() {
            return Ok(());
        }
        self.write_held(held).await
    }

    /// Runs the step graph. A record a step leaves to the run is written before another step
    /// starts or is skipped, or while other steps still run; those of the last steps are
    /// returned, for the run's end.
    async fn run_graph(
        &mut self,
        runner: &StepRunner<'_>,
        flow: &Flow,
        run_token: &CancellationToken,
        run_timed_out: &AtomicBool,
        inbox: &mut Inbox,
    ) -> Result<GraphEnd, StoreError> {
        let steps = &flow.steps;
        let mut graph = Graph::new(steps);
        let mut running = FuturesUnordered::new();
        let mut halt: Option<Halt> = None;
        let mut failure: Option<RunError> = None;
        let mut held: Vec<StepRun> = Vec::new();
        let deadline = async {
            match flow.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);

        loop {
            if !running.is_empty() {
                self.release_held(&mut held).await?;
            }
            // Start (or skip) every step whose dependencies are done.
            while let Some((i, blocked)) = graph.next_ready() {
                self.release_held(&mut held).await?;
                if blocked || halt.is_some() {
                    runner
                        .skip(&steps[i], skip_reason(halt.as_ref(), blocked))
                        .await?;
                    graph.skip(i, halt != Some(Halt::End));
                    continue;
                }
                if running.len() >= flow.max_parallel {
                    break;
                }
                graph.start(i);
                let scope = self.scope();
                let step = &steps[i];
                let reused = self.reused.0.remove(&step.name);
                let record = self.reused.1;
                running.push(async move {
                    let outcome = match reused {
                        Some(result) => runner.reuse(step, result, record).await,
                        None => runner.run(step, scope, false).await,
                    };
                    (i, outcome)
                });
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, outcome)) = running.next() => {
                    let mut outcome = outcome?;
                    held.extend(outcome.held.take());
                    let step = &steps[i];
                    let failed = matches!(outcome.status, StepStatus::Failed | StepStatus::TimedOut);
                    let jump = match &outcome.control {
                        Some(Control::Exit { message }) => {
                            halt.get_or_insert(Halt::Exit(message.clone()));
                            None
                        }
                        Some(Control::Goto { target }) => Some(target.clone()),
                        Some(Control::State { values }) => {
                            self.merge_state(values);
                            None
                        }
                        None if failed && halt.is_none() => step.on_error_goto.clone(),
                        None => None,
                    };
                    graph.finish(i, outcome.status, jump.is_none());
                    if failed && halt.is_none() && jump.is_none() {
                        let message = outcome.error.clone().unwrap_or_default();
                        failure.get_or_insert(RunError { step: Some(step.name.clone()), message });
                    }
                    self.apply(step, outcome);
                    if jump.is_some() {
                        self.write_held(&mut held).await?;
                    }
                    if let Some(target) = jump
                        && let Err(message) = self.jump(runner, flow, &mut graph, &mut halt, i, &target).await? {
                            graph.finish(i, StepStatus::Failed, true);
                            failure.get_or_insert(RunError { step: Some(step.name.clone()), message });
                        }
                }
                () = &mut deadline, if halt != Some(Halt::TimedOut) && flow.timeout.is_some() => {
                    run_timed_out.store(true, Ordering::SeqCst);
                    halt = Some(Halt::TimedOut);
                    run_token.cancel();
                }
                () = run_token.cancelled(), if halt.is_none() || halt == Some(Halt::End) => {
                    halt = Some(Halt::Cancelled);
                }
                Some(patch) = inbox.recv() => self.update_context(patch, runner.logs).await,
            }
        }
        Ok(GraphEnd {
            halt,
            failure,
            skipped: graph.skipped,
            held,
        })
    }

    /// Moves the run to `target` after step `from`; `Err` with a message when it cannot.
    async fn jump(
        &mut self,
        runner: &StepRunner<'_>,
        flow: &Flow,
        graph: &mut Graph,
        halt: &mut Option<Halt>,
        from: usize,
        target: &str,
    ) -> Result<Result<(), String>, StoreError> {
        if graph.jumps >= flow.max_jumps {
            return Ok(Err(format!(
                "more than {} jumps; raise `max_jumps` if the loop is intended",
                flow.max_jumps
            )));
        }
        match Graph::target(&flow.steps, target) {
            Jump::Unknown => Ok(Err(format!("cannot jump to unknown step `{target}`"))),
            Jump::End => {
                graph.jumps += 1;
                halt.get_or_insert(Halt::End);
                Ok(Ok(()))
            }
            Jump::To(to) => {
                for j in graph.jump(from, to) {
                    runner
                        .skip(&flow.steps[j], &format!("jumped over to `{target}`"))
                        .await?;
                }
                Ok(Ok(()))
            }
        }
    }

    /// Later steps see state a step wrote.
    fn merge_state(&mut self, values: &Map<String, Value>) {
        if let Some(Value::Object(state)) = Arc::make_mut(&mut self.names).get_mut("state") {
            state.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    /// Stores a step's result and error in `data`.
    fn apply(&mut self, step: &Step, outcome: Outcome) {
        let data = Arc::make_mut(&mut self.data);
        if let Some(value) = outcome.value {
            // Results are redacted before later steps see them, so no step can pass a secret
            // on through `data` (templates reach secrets only through `secrets`).
            let value = self.engine.redactor.redact(value);
            data.insert(step.result_key.clone(), value);
            if step.private {
                self.private_keys.insert(step.result_key.clone());
            } else {
                self.private_keys.remove(&step.result_key);
            }
        }
        if let Some(error) = outcome.error
            && matches!(
                outcome.status,
                StepStatus::Failed | StepStatus::TimedOut | StepStatus::Ignored
            )
        {
            let entry = json!({
                "step": step.name,
                "error": error,
                "ignored": outcome.status == StepStatus::Ignored,
            });
            if let Some(Value::Array(errors)) = data.get_mut("__errors__") {
                errors.push(entry);
            } else {
                data.insert("__errors__".to_owned(), Value::Array(vec![entry]));
            }
        }
        if let Some(observer) = self.observer.as_ref().filter(|o| o.wants_data())
            && let Value::Object(data) = self.shown_data()
        {
            observer.on_event(&RunEvent::DataChanged(&data));
        }
    }

    /// Takes an update of the run's context from outside: merged into `data` (redacted, as
    /// step results are), told to the observers, and noted in the run's log. An empty one
    /// only asks for the data.
    async fn update_context(
        &mut self,
        patch: ContextPatch,
        logs: &tokio::sync::mpsc::Sender<LogLine>,
    ) {
        if patch.values.is_empty() {
            let _ = patch.reply.send(self.shown_data());
            return;
        }
        let keys: Vec<String> = patch.values.keys().cloned().collect();
        let values = match self.engine.redactor.redact(Value::Object(patch.values)) {
            Value::Object(values) => values,
            _ => Map::new(),
        };
        merge(Arc::make_mut(&mut self.data), values);
        for key in &keys {
            self.private_keys.remove(key);
        }
        let shown = self.shown_data();
        if let Some(observer) = self.observer.as_ref().filter(|o| o.wants_data())
            && let Value::Object(data) = &shown
        {
            observer.on_event(&RunEvent::DataChanged(data));
        }
        let line = LogLine {
            run_id: self.run.id,
            step: "context".to_owned(),
            attempt: 1,
            ts: Utc::now(),
            stream: LogStream::Engine,
            line: format!("context updated: {}", keys.join(", ")),
            seq: 0,
        };
        let _ = logs.send(line).await;
        let _ = patch.reply.send(shown);
    }
}

//! Runs one run of a flow: order and `depends`, `when`, retries, timeouts, `ignore_errors`,
//! `jq_expression`, cancellation, `on_failure` — recording every status change in the store.

mod callback;
mod catalog;
mod child;
mod context;
mod dry_run;
mod events;
mod graph;
pub mod kinds;
mod lease;
mod logs;
mod recording;
mod recover;
mod run;
mod step;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use crate::secrets::{MASK, Redactor};
pub use callback::{CallbackHub, CallbackReport, CallbackSigner, CallbackStatus};
pub use catalog::{DirCatalog, FlowCatalog};
pub use context::{ContextError, ContextHub, check_keys as check_context_keys};
pub use dry_run::{DryRun, DryStep};
pub use events::{Observer, Observers, RunEvent};
pub use recover::{HandedBack, hand_back, recover_interrupted};

use crate::expr::{Scope, Tpl};
use crate::flow::{Flow, ParamError};
use crate::fs::FilesRoot;
use crate::process_groups::ProcessGroups;
use crate::secrets::Secrets;
use crate::step::StepServices;
use crate::store::{Run, RunId, RunStatus, Store, StoreError, TriggerInfo};

/// Settings of the engine on one node.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where steps may touch files; relative paths start in its data directory.
    pub files: FilesRoot,
    /// The `templates/` directory.
    pub templates_dir: PathBuf,
    /// Between SIGTERM and SIGKILL for cancelled processes (default 5 s).
    pub kill_grace: Duration,
    /// Largest step result kept in the step-run record; larger ones go to run files.
    pub max_result_bytes: usize,
    /// The environment given to processes and templates.
    pub env: BTreeMap<String, String>,
    /// This node's name (`host:pid:nonce`).
    pub node: String,
    /// How long a run's lease lasts without renewal (default 30 s): a run whose executor
    /// died is found this long after its last renewal.
    pub lease: Duration,
    /// How often a running run's executor renews its lease (default 10 s).
    pub renew_every: Duration,
    /// Where steps record the process groups they lead (none by default).
    pub process_groups: ProcessGroups,
}

impl EngineConfig {
    /// Defaults for a data directory: `templates/` in it, 5 s grace, 1 MiB results, 30 s
    /// leases renewed every 10 s.
    pub fn new(files: FilesRoot) -> Self {
        let templates_dir = files.data_dir().join("templates");
        Self {
            files,
            templates_dir,
            kill_grace: Duration::from_secs(5),
            max_result_bytes: 1024 * 1024,
            env: BTreeMap::new(),
            node: String::from("local"),
            lease: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
            process_groups: ProcessGroups::default(),
        }
    }
}

/// What to start a run with.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Given params (checked against the flow's declarations).
    pub params: Map<String, Value>,
    /// The payload (`__input__`); an object's keys also become `data` keys.
    pub input: Value,
    /// What started it.
    pub trigger: TriggerInfo,
    /// The run whose step started this one.
    pub parent_run_id: Option<RunId>,
    /// The id to give the run; a fresh one when `None`. Set when something must be put in
    /// the run's workspace before the run is recorded (a webhook's uploads).
    pub id: Option<RunId>,
    /// Whether files were put in the run's workspace before it was recorded (a webhook's
    /// uploads): such a run is recorded before it starts, so that no unrecorded run leaves
    /// files behind.
    pub has_files: bool,
}

impl RunRequest {
    /// A manual run with these params and no payload.
    pub fn new(params: Map<String, Value>) -> Self {
        Self {
            params,
            input: Value::Null,
            trigger: TriggerInfo::new("manual"),
            parent_run_id: None,
            id: None,
            has_files: false,
        }
    }
}

/// Why a run was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The params do not fit the flow.
    #[error("invalid params: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Params(Vec<ParamError>),
    /// The concurrency key cannot be rendered.
    #[error("cannot render the concurrency key: {0}")]
    ConcurrencyKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine of one node.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    config: Arc<EngineConfig>,
    services: Arc<StepServices>,
    redactor: Redactor,
    /// `secrets` as templates see it.
    secrets: Arc<Value>,
    /// Where `flow` steps find other flows.
    catalog: Option<Arc<dyn FlowCatalog>>,
    /// Makes `run.callback_url`; without it runs have none.
    callbacks: Option<CallbackSigner>,
    /// Where `wait: callback` steps wait.
    hub: Arc<CallbackHub>,
    /// Where updates of a running run's context find it.
    contexts: Arc<ContextHub>,
}

impl Engine {
    /// An engine recording into `store`.
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        let services = StepServices {
            files: config.files.clone(),
            templates_dir: config.templates_dir.clone(),
            kill_grace: config.kill_grace,
            env: Arc::new(config.env.clone()),
            secrets: Arc::new(Secrets::default()),
            process_groups: config.process_groups.clone(),
        };
        Self {
            store,
            config: Arc::new(config),
            services: Arc::new(services),
            redactor: Redactor::default(),
            secrets: Arc::new(Value::Object(Map::new())),
            catalog: None,
            callbacks: None,
            hub: Arc::default(),
            contexts: Arc::default(),
        }
    }

    /// Gives runs a `run.callback_url` signed by `signer`.
    #[must_use]
    pub fn with_callbacks(mut self, signer: CallbackSigner) -> Self {
        self.callbacks = Some(signer);
        self
    }

    /// The signer of callback tokens, when runs have callback URLs.
    pub fn callbacks(&self) -> Option<&CallbackSigner> {
        self.callbacks.as_ref()
    }

    /// Where `wait: callback` steps of this engine's runs wait for their report.
    pub fn callback_hub(&self) -> &Arc<CallbackHub> {
        &self.hub
    }

    /// Merges `values` into the data of a run executing in this engine, as a JSON merge
    /// patch (a `null` removes a key); the tracker and the run's end see it. Returns the
    /// run's data after it, redacted.
    ///
    /// # Errors
    /// When the run does not execute here, or a key is one the engine keeps (`__…`).
    pub async fn update_context(
        &self,
        id: &RunId,
        values: Map<String, Value>,
    ) -> Result<Value, ContextError> {
        self.contexts.update(id, values).await
    }

    pub(crate) fn context_hub(&self) -> &Arc<ContextHub> {
        &self.contexts
    }

    /// Lets `flow` and `flow_loop` steps find other flows here.
    #[must_use]
    pub fn with_catalog(mut self, catalog: Arc<dyn FlowCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Makes `secrets` available to templates, and redacts their values from everything the
    /// engine records.
    #[must_use]
    pub fn with_secrets(mut self, secrets: &Secrets) -> Self {
        self.redactor = secrets.redactor();
        self.secrets = Arc::new(secrets.to_scope_value());
        let mut services = (*self.services).clone();
        services.secrets = Arc::new(secrets.clone());
        self.services = Arc::new(services);
        self
    }

    /// The secrets runs see (for triggers that check callers against them).
    pub fn secrets(&self) -> &Secrets {
        &self.services.secrets
    }

    /// The redactor of this engine's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Checks params and records the run already owned by this engine's node (`running`,
    /// leased, its generation 1), for [`execute`](Self::execute) to run at once: no worker
    /// can claim it. Nothing is recorded when params are bad. (Runs for workers to claim are
    /// admitted through [`Service::start`](crate::service::Service::start).)
    pub async fn accept(&self, flow: &Flow, request: RunRequest) -> Result<Run, AcceptError> {
        let mut run = self.new_run(flow, request)?;
        run.node = Some(self.config.node.clone());
        Ok(self.store.insert_owned(&run, self.config.lease).await?)
    }

    /// `run`, new, as this node owns it once recorded: `running` here, generation 1, started
    /// now.
    pub fn owned_here(&self, mut run: Run) -> Run {
        run.node = Some(self.config.node.clone());
        run.status = RunStatus::Running;
        run.generation = 1;
        run.started_at = Some(crate::store::now());
        run
    }

    /// Checks params and renders the concurrency key: the `queued` run to record. Its `data`
    /// is the request's input (secrets redacted).
    pub fn new_run(&self, flow: &Flow, request: RunRequest) -> Result<Run, AcceptError> {
        let params = flow
            .params
            .validate(&request.params)
            .map_err(AcceptError::Params)?;
        let concurrency_key = match &flow.concurrency {
            None => None,
            Some(c) => Some(match &c.key {
                None => flow.name.clone(),
                Some(key) => {
                    let scope = Scope::builder()
                        .name("params", Value::Object(params.clone()))
                        .build();
                    Tpl::<String>::from_value(Value::String(key.clone()))
                        .map_err(AcceptError::ConcurrencyKey)?
                        .render(&scope)
                        .map_err(|e| AcceptError::ConcurrencyKey(e.to_string()))?
                }
            }),
        };
        Ok(Run {
            id: request.id.unwrap_or_default(),
            flow: flow.name.clone(),
            flow_version: flow.version.clone(),
            status: RunStatus::Queued,
            params: Value::Object(params),
            trigger: request.trigger,
            concurrency_key,
            parent_run_id: request.parent_run_id,
            created_at: crate::store::now(),
            started_at: None,
            finished_at: None,
            error: None,
            data: self.redactor.redact(request.input),
            node: None,
            message: None,
            progress: None,
            generation: 0,
        })
    }

    /// Runs a run this node owns — from [`accept`](Self::accept) or a claim — to its end and
    /// returns the final record. Its lease is renewed meanwhile. Every write names the run's
    /// fence: when the run is no longer this executor's (its lease was taken over, it was
    /// handed back or ended elsewhere), its steps are stopped and [`StoreError::Fenced`] is
    /// returned; a run that is not `running` is refused the same way.
    pub async fn execute(
        &self,
        flow: Arc<Flow>,
        run: Run,
        cancel: CancellationToken,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Run, StoreError> {
        // Boxed: a run's future is several kilobytes, and the tasks that hold it would copy
        // it whole each time they are spawned, polled to their end or read.
        Box::pin(run::Execution::new(self, flow, run, cancel, observer).run()).await
    }

    /// Runs a run this node owns ([`owned_here`](Self::owned_here)) but has not recorded:
    /// as [`execute`](Self::execute), but the run is recorded once, with its steps, at its
    /// end — unless it writes anything before (a log line, a step record it cannot hold) or
    /// outlasts a moment (100 ms): then it is recorded `running` at that point. Only for
    /// runs of [side-effect-free](Flow::side_effect_free) flows whose caller waits for the
    /// end: until the run is recorded, nothing of it exists outside this process. `run` is
    /// shared with the caller, who may keep it (to record the run should this fail).
    pub async fn execute_deferred(
        &self,
        flow: Arc<Flow>,
        run: Arc<Run>,
        cancel: CancellationToken,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Run, StoreError> {
        let own = Run::clone(&run);
        Box::pin(
            run::Execution::new(self, flow, own, cancel, observer)
                .deferred(run)
                .run(),
        )
        .await
    }
}

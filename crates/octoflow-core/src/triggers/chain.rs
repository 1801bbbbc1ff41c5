//! Flow triggers: `flow: {name, status}` starts a run of the flow declaring it when a run of
//! `name` ends with one of `status`.
//!
//! The service owns the [`FlowTriggers`] and tells them of every run that ends on this node; an index from
//! upstream flow name to the flows waiting for it (rebuilt when the library changes) makes
//! that a map lookup for flows nobody waits for. Ended runs that someone waits for are queued
//! to one task, which starts the downstream runs — so the worker that ran the upstream run
//! never waits, and starting a run can never recurse into ending one.
//!
//! A downstream run gets params `upstream_run_id`, `upstream_flow` and `upstream_status`,
//! the upstream run's data (without the engine's `__…__` keys) as its input — so its `data`
//! starts with the upstream's step results and `data.__input__` holds them all — and
//! trigger `{kind: "flow", detail: {run_id, flow, status, depth}}`. It is admitted with the
//! idempotency key `flow:<upstream run id>`: one upstream run starts each downstream flow
//! once. Runs of `flow` steps (child runs) fire no flow triggers: they are part of their
//! parent's run, whose end does. A chain longer than [`MAX_DEPTH`] (flows triggering each
//! other in a loop) stops there.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use crate::engine::RunRequest;
use crate::library::{FlowEntry, FlowLibrary};
use crate::service::Service;
use crate::store::{Run, RunId, RunStatus, TriggerInfo};

/// The longest chain of flow-triggered runs: the 101st run of a loop is not started.
pub const MAX_DEPTH: u64 = 100;

/// Upstream flow name → `(downstream flow, statuses)`.
type Index = HashMap<String, Vec<(String, Vec<RunStatus>)>>;

/// The flows waiting for runs of each flow to end, told of the ends of this node's runs.
pub struct FlowTriggers {
    index: RwLock<Index>,
    queue: UnboundedSender<Ended>,
}

impl std::fmt::Debug for FlowTriggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTriggers").finish_non_exhaustive()
    }
}

/// A run that ended, as queued to the task.
#[derive(Debug)]
pub(crate) enum Ended {
    Run(Box<Run>),
    Id(RunId),
}

impl FlowTriggers {
    /// Empty flow triggers and the receiving end of their queue.
    pub(crate) fn new() -> (Self, UnboundedReceiver<Ended>) {
        let (queue, rx) = unbounded_channel();
        let chain = Self {
            index: RwLock::default(),
            queue,
        };
        (chain, rx)
    }

    /// Rebuilds the index from the library's flows.
    pub(crate) fn follow(&self, entries: &[FlowEntry]) {
        let mut index = Index::new();
        for flow in entries.iter().filter_map(|e| e.flow.as_ref()) {
            for trigger in &flow.triggers {
                if let crate::flow::Trigger::Flow(upstream) = trigger {
                    index
                        .entry(upstream.name.clone())
                        .or_default()
                        .push((flow.name.clone(), upstream.status.clone()));
                }
            }
        }
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
    }

    /// The flows to start after a run of `flow` ended with `status`.
    fn downstream(&self, flow: &str, status: RunStatus) -> Vec<String> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index.get(flow).map_or_else(Vec::new, |list| {
            list.iter()
                .filter(|(_, statuses)| statuses.contains(&status))
                .map(|(name, _)| name.clone())
                .collect()
        })
    }

    /// A run ended on this node (its final record).
    pub(crate) fn ended(&self, run: &Run) {
        if run.parent_run_id.is_none() && !self.downstream(&run.flow, run.status).is_empty() {
            self.queue.send(Ended::Run(Box::new(run.clone()))).ok();
        }
    }

    /// A run may have ended; read again when any flow waits for runs.
    pub(crate) fn ended_id(&self, id: RunId) {
        let waiting = !self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if waiting {
            self.queue.send(Ended::Id(id)).ok();
        }
    }
}

/// Starts the downstream runs of the runs queued, until `stop`; then the runs queued by then
/// are still handled.
pub(super) async fn run(
    service: Service,
    library: Arc<FlowLibrary>,
    mut queue: UnboundedReceiver<Ended>,
    stop: CancellationToken,
) {
    let chain = service.flow_triggers();
    loop {
        let ended = tokio::select! {
            ended = queue.recv() => ended,
            () = stop.cancelled() => {
                queue.close();
                None
            }
        };
        match ended {
            Some(ended) => handle(&service, &library, chain, ended).await,
            None => break,
        }
    }
    while let Some(ended) = queue.recv().await {
        handle(&service, &library, chain, ended).await;
    }
}

async fn handle(service: &Service, library: &FlowLibrary, chain: &FlowTriggers, ended: Ended) {
    let run = match ended {
        Ended::Run(run) => *run,
        Ended::Id(id) => match service.store().run(&id).await {
            Ok(Some(run)) if run.status.is_final() && run.parent_run_id.is_none() => run,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(run_id = %id, error = %crate::error::chain(&error), "Cannot read an ended run for its flow triggers.");
                return;
            }
        },
    };
    let depth = upstream_depth(&run) + 1;
    for name in chain.downstream(&run.flow, run.status) {
        if depth > MAX_DEPTH {
            tracing::warn!(flow = %name, upstream_run_id = %run.id, depth, "Flow trigger not fired: the chain of flow-triggered runs is too long (a loop?).");
            continue;
        }
        let Some(flow) = library.flow(&name) else {
            continue;
        };
        let key = format!("flow:{}", run.id);
        match service.start(&flow, request(&run, depth), Some(key)).await {
            Ok(admitted) => {
                tracing::info!(flow = %name, run_id = %admitted.run().id, upstream_run_id = %run.id, "Flow trigger started a run.");
            }
            Err(error) => {
                tracing::error!(flow = %name, upstream_run_id = %run.id, error = %crate::error::chain(&error), "Flow trigger cannot start a run.");
            }
        }
    }
}

/// How many flow-triggered runs led to `run`.
fn upstream_depth(run: &Run) -> u64 {
    if run.trigger.kind == "flow" {
        run.trigger
            .detail
            .get("depth")
            .and_then(Value::as_u64)
            .unwrap_or(1)
    } else {
        0
    }
}

/// The request of the run started after `upstream`.
fn request(upstream: &Run, depth: u64) -> RunRequest {
    let mut params = Map::new();
    params.insert("upstream_run_id".to_owned(), json!(upstream.id.to_string()));
    params.insert("upstream_flow".to_owned(), json!(upstream.flow));
    params.insert(
        "upstream_status".to_owned(),
        json!(upstream.status.as_str()),
    );
    let mut request = RunRequest::new(params);
    request.input = match &upstream.data {
        Value::Object(data) => Value::Object(
            data.iter()
                .filter(|(k, _)| !(k.starts_with("__") && k.ends_with("__")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Object(Map::new()),
    };
    request.trigger = TriggerInfo {
        kind: "flow".to_owned(),
        detail: json!({
            "run_id": upstream.id.to_string(),
            "flow": upstream.flow,
            "status": upstream.status.as_str(),
            "depth": depth,
        }),
    };
    request
}

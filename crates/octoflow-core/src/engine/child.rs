//! Child runs: the runs that `flow` and `flow_loop` steps start, linked to their parent.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::instrument::WithSubscriber;

use super::run::Execution;
use super::{AcceptError, Engine, RunRequest};
use crate::error::{chain, panic_message};
use crate::flow::Flow;
use crate::step::{StepCx, StepError};
use crate::store::{Run, RunError, RunStatus, RunUpdate, StoreError, TriggerInfo};

/// How deep `flow` steps may nest (a flow that calls itself stops here).
const MAX_DEPTH: u32 = 16;

impl Engine {
    /// The flow a `flow` step names, by `name` or by `path` in the flows directory.
    pub(crate) async fn resolve_flow(
        &self,
        name: Option<&str>,
        path: Option<&str>,
    ) -> Result<Arc<Flow>, StepError> {
        let Some(catalog) = &self.catalog else {
            return Err(StepError::fatal(
                "this engine has no flows directory to find other flows in",
            ));
        };
        let found = match (name, path) {
            (Some(name), _) => catalog.by_name(name).await,
            (None, Some(path)) => catalog.by_path(path).await,
            (None, None) => Err("give the flow's `name` or `path`".to_owned()),
        };
        found.map_err(StepError::fatal)
    }

    /// Runs `flow` as a child of the step in `cx` and returns its final record.
    pub(crate) async fn run_child(
        &self,
        cx: &StepCx<'_>,
        flow: Arc<Flow>,
        input: Value,
        params: Map<String, Value>,
        loop_index: Option<usize>,
        cancel: CancellationToken,
    ) -> Result<Run, StepError> {
        if cx.run.depth >= MAX_DEPTH {
            return Err(StepError::fatal(format!(
                "flows nest more than {MAX_DEPTH} deep (does `{}` call itself?)",
                flow.name
            )));
        }
        let mut request = RunRequest::new(params);
        request.input = input;
        request.trigger = TriggerInfo {
            kind: "flow".to_owned(),
            detail: json!({ "parent_run_id": cx.run.id.to_string(), "step": cx.step }),
        };
        request.parent_run_id = Some(cx.run.id);
        let run = self.accept(&flow, request).await.map_err(|e| match e {
            AcceptError::Store(e) => StepError::Internal(Box::new(e)),
            other => StepError::fatal(format!(
                "cannot start flow `{}`: {}",
                flow.name,
                chain(&other)
            )),
        })?;
        // The child runs in a task of its own: each level of nesting polls on a fresh stack
        // (however deep flows nest, the node's threads never overflow), and a panic in it
        // ends only the child. Dropping the step (its run stopped) stops the child with it.
        let engine = self.clone();
        let depth = cx.run.depth + 1;
        let parent_files = cx.files().clone();
        let owned = run.clone();
        let task = tokio::spawn(
            async move {
                Execution::new(&engine, flow, run, cancel, None)
                    .into_child(depth, loop_index, parent_files)
                    .run()
                    .await
            }
            .with_current_subscriber(),
        );
        match AbortOnDropHandle::new(task).await {
            Ok(ended) => ended.map_err(|e| StepError::Internal(Box::new(e))),
            Err(join) => {
                let message = match join.try_into_panic() {
                    Ok(panic) => format!(
                        "internal error: the engine panicked: {}",
                        panic_message(&*panic)
                    ),
                    Err(join) => format!("internal error: {join}"),
                };
                self.end_failed(&owned, &message)
                    .await
                    .map_err(|e| StepError::Internal(Box::new(e)))?;
                Err(StepError::fatal(format!(
                    "run {} of flow `{}` ended failed: {message}",
                    owned.id, owned.flow
                )))
            }
        }
    }

    /// Ends a run this engine owns `failed` with `message` — one that cannot run, or whose
    /// execution panicked — under its fence.
    pub(crate) async fn end_failed(&self, run: &Run, message: &str) -> Result<(), StoreError> {
        let mut update = RunUpdate::status(run.id, RunStatus::Failed);
        update.finished_at = Some(crate::store::now());
        update.error = Some(RunError {
            step: None,
            message: self.redactor.text(message).into_owned(),
        });
        self.store.end_run(&run.fence(), &[], &update).await
    }
}

/// A child run's outcome as a step result: its data, or an error naming the run.
pub(crate) fn child_result(run: Run) -> Result<Value, String> {
    if run.status == RunStatus::Succeeded {
        return Ok(run.data);
    }
    let reason = run.error.map(|e| e.message).unwrap_or_default();
    Err(format!(
        "run {} of flow `{}` ended {}: {reason}",
        run.id, run.flow, run.status
    ))
}

//! After a crash: the runs a dead node left `running` are handed back — re-queued when their
//! flow says `on_interrupt: retry`, else ended `failed` / `interrupted` — under the fence
//! they were left with, so two nodes handing one run back change it once.

use super::FlowCatalog;
use crate::flow::OnInterrupt;
use crate::store::{Run, RunId, Store, StoreError};

/// What [`hand_back`] did with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandedBack {
    /// Queued again, for a worker to run it from the start (or from its last recorded
    /// steps, with `resume: true`).
    Requeued,
    /// Ended `failed` with error `interrupted`.
    Interrupted,
    /// Someone else changed it first (its lease was taken over, it ended).
    Unchanged,
}

/// Re-queues or ends a run its node left behind. A child run (of a `flow` step) always
/// ends: its parent, re-queued, starts a new one.
pub async fn hand_back(
    store: &dyn Store,
    catalog: &dyn FlowCatalog,
    run: &Run,
) -> Result<HandedBack, StoreError> {
    let retry = run.parent_run_id.is_none()
        && match catalog.by_name(&run.flow).await {
            Ok(flow) => flow.on_interrupt == OnInterrupt::Retry,
            Err(_) => false,
        };
    let fence = run.fence();
    if retry && store.requeue(&fence).await? {
        tracing::warn!(run_id = %run.id, flow = %run.flow, "Interrupted run re-queued.");
        Ok(HandedBack::Requeued)
    } else if store.mark_interrupted(&fence).await? {
        tracing::warn!(run_id = %run.id, flow = %run.flow, "Run was interrupted by the end of its node.");
        Ok(HandedBack::Interrupted)
    } else {
        Ok(HandedBack::Unchanged)
    }
}

/// Hands back every `running` run whose node is not alive; returns the runs and what was
/// done with each.
pub async fn recover_interrupted(
    store: &dyn Store,
    catalog: &dyn FlowCatalog,
    is_alive: impl Fn(&str) -> bool,
) -> Result<Vec<(RunId, HandedBack)>, StoreError> {
    let mut handed = Vec::new();
    for run in store.running_runs().await? {
        if !run.node.as_deref().is_some_and(&is_alive) {
            handed.push((run.id, hand_back(store, catalog, &run).await?));
        }
    }
    Ok(handed)
}

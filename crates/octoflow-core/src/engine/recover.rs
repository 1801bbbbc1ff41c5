//! After a crash: runs left `running` by a process that is gone end `failed` / `interrupted`.

use crate::store::{RunId, Store, StoreError};

/// Marks every `running` run whose node is not alive as interrupted; returns their ids.
pub async fn recover_interrupted(
    store: &dyn Store,
    is_alive: impl Fn(&str) -> bool,
) -> Result<Vec<RunId>, StoreError> {
    let mut ended = Vec::new();
    for run in store.running_runs().await? {
        let alive = run.node.as_deref().is_some_and(&is_alive);
        if !alive && store.mark_interrupted(&run.fence()).await? {
            tracing::warn!(run_id = %run.id, flow = %run.flow, "Run was interrupted by the end of its process.");
            ended.push(run.id);
        }
    }
    Ok(ended)
}

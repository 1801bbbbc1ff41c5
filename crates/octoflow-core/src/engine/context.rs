//! Updates of a running run's context from outside (the job tracker's `context`, SPEC §13):
//! a JSON merge patch (RFC 7396) of the run's `data`, applied by the executor that runs it —
//! between two of its own changes, so the run's writes and the patch never race.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::store::{RunId, RunStatus};

/// Why a context update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The run is queued: its context exists once it starts.
    #[error("run {0} has not started yet; its context can be updated once it runs")]
    NotStarted(RunId),
    /// The run has ended: its context is final.
    #[error("run {0} has ended ({1}); its context is final")]
    Ended(RunId, RunStatus),
    /// The run is not executing in this engine (it ended meanwhile, or runs on another
    /// node).
    #[error("run {0} is not running on this node")]
    NotRunning(RunId),
    /// A key the engine keeps for itself (`__input__`, `__errors__`, …).
    #[error("`{0}` is kept by the engine and cannot be updated")]
    Reserved(String),
}

/// One update on its way to the run, and where its answer goes.
pub(crate) struct ContextPatch {
    pub(crate) values: Map<String, Value>,
    /// The run's data once the patch is in, as it may be shown.
    pub(crate) reply: oneshot::Sender<Value>,
}

/// Where updates find the runs executing in this engine.
#[derive(Default)]
pub struct ContextHub {
    runs: Mutex<HashMap<RunId, mpsc::UnboundedSender<ContextPatch>>>,
}

/// A run's inbox of updates; dropping it (the run's end) closes it.
pub(crate) struct Inbox {
    hub: Arc<ContextHub>,
    id: RunId,
    rx: mpsc::UnboundedReceiver<ContextPatch>,
}

impl Inbox {
    /// The next update.
    pub(crate) async fn recv(&mut self) -> Option<ContextPatch> {
        self.rx.recv().await
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.hub
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl ContextHub {
    /// Opens run `id`'s inbox for as long as it runs.
    pub(crate) fn open(self: &Arc<Self>, id: RunId) -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        Inbox {
            hub: self.clone(),
            id,
            rx,
        }
    }

    /// Merges `values` into the data of run `id` (a key set to `null` is removed; objects
    /// merge key by key) and returns the run's data after it, redacted. Keys starting with
    /// `__` are the engine's and refused. No values: the run's data as it is now.
    ///
    /// # Errors
    /// [`ContextError::NotRunning`] when the run does not execute here, or ends before it
    /// takes the update; [`ContextError::Reserved`] for an engine key.
    pub async fn update(
        &self,
        id: &RunId,
        values: Map<String, Value>,
    ) -> Result<Value, ContextError> {
        check_keys(&values)?;
        let sender = self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or(ContextError::NotRunning(*id))?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(ContextPatch { values, reply })
            .map_err(|_| ContextError::NotRunning(*id))?;
        answer.await.map_err(|_| ContextError::NotRunning(*id))
    }
}

/// Refuses the keys the engine keeps for itself (`__…`).
///
/// # Errors
/// [`ContextError::Reserved`] naming the first such key.
pub fn check_keys(values: &Map<String, Value>) -> Result<(), ContextError> {
    match values.keys().find(|k| k.starts_with("__")) {
        Some(key) => Err(ContextError::Reserved(key.clone())),
        None => Ok(()),
    }
}

/// Applies a merge patch (RFC 7396) to `target`.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge(existing, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_merge_patch_sets_removes_and_merges_objects() {
        let mut data = object(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "d": "keep"}));
        merge(
            &mut data,
            object(json!({"a": null, "b": {"y": null, "z": 3}, "c": {"n": 1}, "e": [2]})),
        );
        assert_eq!(
            Value::Object(data),
            json!({"b": {"x": 1, "z": 3}, "c": {"n": 1}, "d": "keep", "e": [2]})
        );
    }

    #[tokio::test]
    async fn updates_reach_only_a_run_with_an_open_inbox() {
        let hub = Arc::new(ContextHub::default());
        let id = RunId::new();
        assert_eq!(
            hub.update(&id, Map::new()).await,
            Err(ContextError::NotRunning(id))
        );
        assert_eq!(
            hub.update(&id, object(json!({"__errors__": []}))).await,
            Err(ContextError::Reserved("__errors__".to_owned()))
        );
        let mut inbox = hub.open(id);
        let run = tokio::spawn(async move {
            let patch = inbox.recv().await.unwrap();
            let _ = patch.reply.send(Value::Object(patch.values));
        });
        let answer = hub.update(&id, object(json!({"k": 1}))).await;
        assert_eq!(answer, Ok(json!({"k": 1})));
        run.await.unwrap();
        assert_eq!(
            hub.update(&id, Map::new()).await,
            Err(ContextError::NotRunning(id)),
            "the inbox closed with the run"
        );
    }
}

//! What a flow's folder watches remember across restarts, kept in the store's flow state
//! ([`StateStore`](crate::store::StateStore)) under a namespace of its own,
//! `__watch__.<flow>`: no flow can be named so (flow names start with a letter or digit),
//! so no run reads or writes it, and it never shows in a run's `state`.
//!
//! - `file:<path>` → `{size, mtime_ns, run_id, at}`: the last version of the file that
//!   started a run (or `{size, mtime_ns, skipped: true, at}` for a file skipped as
//!   existing). `<path>` is the run's `params.file`.
//! - `watch:<folder>|<pattern>|<recursive>` → `{started_at}`: the watch has started before,
//!   so the files in its folder are no longer "existing" ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::settle::Stat;
use crate::flow::WatchTrigger;
use crate::store::{RunId, Store, StoreError};

const FILE: &str = "file:";
const WATCH: &str = "watch:";

/// The state namespace of a flow's watches.
pub(crate) fn namespace(flow: &str) -> String {
    format!("__watch__.{flow}")
}

/// The handled files of one flow, as loaded at a watch's start and kept up to date.
pub(super) struct Memory {
    store: Arc<dyn Store>,
    namespace: String,
    files: HashMap<String, Stat>,
    watches: HashSet<String>,
}

impl Memory {
    /// Reads what the flow's watches remember.
    pub(super) async fn load(store: Arc<dyn Store>, flow: &str) -> Result<Self, StoreError> {
        let namespace = namespace(flow);
        let state = store.state(&namespace).await?;
        let mut files = HashMap::new();
        let mut watches = HashSet::new();
        for (key, value) in state {
            if let Some(path) = key.strip_prefix(FILE) {
                if let Some(stat) = stat_of(&value) {
                    files.insert(path.to_owned(), stat);
                }
            } else if let Some(watch) = key.strip_prefix(WATCH)
                && !value.is_null()
            {
                watches.insert(watch.to_owned());
            }
        }
        Ok(Self {
            store,
            namespace,
            files,
            watches,
        })
    }

    /// Whether this version of the file was handled.
    pub(super) fn handled(&self, path: &str, stat: Stat) -> bool {
        self.files.get(path) == Some(&stat)
    }

    /// Whether the watch started before.
    pub(super) fn started(&self, watch: &WatchTrigger) -> bool {
        self.watches.contains(&watch_key(watch))
    }

    /// Records that this version of the file started `run`.
    pub(super) async fn remember(
        &mut self,
        path: &str,
        stat: Stat,
        run: RunId,
    ) -> Result<(), StoreError> {
        self.files.insert(path.to_owned(), stat);
        let mut values = Map::new();
        values.insert(
            format!("{FILE}{path}"),
            json!({
                "size": stat.size,
                "mtime_ns": stat.mtime_ns,
                "run_id": run.to_string(),
                "at": Utc::now().to_rfc3339(),
            }),
        );
        self.store.set_state(&self.namespace, &values).await
    }

    /// Records, in one write, the files skipped as existing and that the watch started.
    pub(super) async fn started_with(
        &mut self,
        watch: &WatchTrigger,
        skipped: Vec<(String, Stat)>,
    ) -> Result<(), StoreError> {
        let at = Utc::now().to_rfc3339();
        let mut values = Map::new();
        for (path, stat) in skipped {
            if self.handled(&path, stat) {
                continue;
            }
            values.insert(
                format!("{FILE}{path}"),
                json!({"size": stat.size, "mtime_ns": stat.mtime_ns, "skipped": true, "at": at}),
            );
            self.files.insert(path, stat);
        }
        let key = watch_key(watch);
        if !self.watches.contains(&key) {
            values.insert(format!("{WATCH}{key}"), json!({ "started_at": at }));
            self.watches.insert(key);
        }
        if values.is_empty() {
            return Ok(());
        }
        self.store.set_state(&self.namespace, &values).await
    }
}

/// What names a watch for "started before": its folder, pattern and recursion (not its
/// settle time nor what it does with existing files).
fn watch_key(watch: &WatchTrigger) -> String {
    format!(
        "{}|{}|{}",
        watch.path,
        watch.pattern.as_deref().unwrap_or("*"),
        watch.recursive
    )
}

fn stat_of(value: &Value) -> Option<Stat> {
    Some(Stat {
        size: value.get("size")?.as_u64()?,
        mtime_ns: value.get("mtime_ns")?.as_u64()?,
    })
}

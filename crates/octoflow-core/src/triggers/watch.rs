//! The folder watches of a node: one task per `watch` trigger of the library's flows, kept
//! in step with the library (a watch added, changed or removed takes effect at the next
//! reload), each starting one run per settled file version it has not handled yet.
//!
//! A settled file starts a run of the flow's current version with `params.file` = the
//! file's path (relative to the data directory, or absolute in `files.roots`) and trigger
//! `{kind: "watch", detail: {path, pattern, file}}`. The run is admitted with the
//! idempotency key `watch:<sha256 of path, size, mtime>`, so one version of a file makes one
//! run even when two watches, two nodes or a restart see it again; the file is then
//! remembered ([`Memory`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::folder::{self, FirstListing, Found, Spec};
use super::memory::Memory;
use super::settle::Stat;
use crate::engine::{AcceptError, RunRequest};
use crate::flow::{Trigger, WatchExisting, WatchTrigger};
use crate::library::{FlowEntry, FlowLibrary};
use crate::service::Service;
use crate::store::TriggerInfo;

/// How long before a file whose run the store could not record is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// A watch as declared: its flow and its trigger, as JSON (so a changed trigger is a new
/// watch).
type Key = (String, String);

/// The running folder watches.
pub(super) struct Watches {
    service: Service,
    library: Arc<FlowLibrary>,
    running: HashMap<Key, (CancellationToken, JoinHandle<()>)>,
}

impl Watches {
    pub(super) fn new(service: Service, library: Arc<FlowLibrary>) -> Self {
        Self {
            service,
            library,
            running: HashMap::new(),
        }
    }

    /// Starts the watches of `entries` that do not run yet and stops those no flow has.
    pub(super) fn follow(&mut self, entries: &[FlowEntry]) {
        let mut wanted: HashMap<Key, WatchTrigger> = HashMap::new();
        for flow in entries.iter().filter_map(|e| e.flow.as_ref()) {
            for trigger in &flow.triggers {
                if let Trigger::Watch(watch) = trigger {
                    let spec = serde_json::to_string(watch).unwrap_or_default();
                    wanted.insert((flow.name.clone(), spec), watch.clone());
                }
            }
        }
        let gone: Vec<Key> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some((stop, _)) = self.running.remove(&key) {
                stop.cancel();
            }
        }
        for (key, watch) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let stop = CancellationToken::new();
            let task = FolderTask {
                service: self.service.clone(),
                library: self.library.clone(),
                flow: key.0.clone(),
                watch,
            };
            let handle = tokio::spawn(task.run(stop.clone()));
            self.running.insert(key, (stop, handle));
        }
    }

    /// Stops every watch and waits for their tasks.
    pub(super) async fn stop(self) {
        for (stop, task) in self.running.into_values() {
            stop.cancel();
            task.await.ok();
        }
    }
}

/// One watch: the async side of a [`folder`] watch.
struct FolderTask {
    service: Service,
    library: Arc<FlowLibrary>,
    flow: String,
    watch: WatchTrigger,
}

impl FolderTask {
    async fn run(self, stop: CancellationToken) {
        let flow = self.flow.clone();
        let path = self.watch.path.clone();
        tokio::select! {
            () = self.watch_until_stopped(&stop) => {}
            () = stop.cancelled() => {}
        }
        tracing::info!(flow = %flow, path = %path, "Folder watch stopped.");
    }

    async fn watch_until_stopped(&self, stop: &CancellationToken) {
        let mut memory = match Memory::load(self.service.store().clone(), &self.flow).await {
            Ok(memory) => memory,
            Err(error) => {
                tracing::error!(flow = %self.flow, error = %crate::error::chain(&error), "Cannot read what the folder watch handled; not watching.");
                return;
            }
        };
        let first = if self.watch.existing == WatchExisting::Skip && !memory.started(&self.watch) {
            FirstListing::Report
        } else {
            FirstListing::Settle
        };
        let (tx, mut rx) = unbounded_channel();
        let Some(_guard) = self.start_folder(first, tx.clone()).await else {
            return;
        };
        let mut skipped = Vec::new();
        while let Some(found) = rx.recv().await {
            match found {
                Found::Existing(path, stat) => {
                    if let Some(file) = self.file_param(&path) {
                        skipped.push((file, stat));
                    }
                }
                Found::Listed => {
                    let count = skipped.len();
                    match memory
                        .started_with(&self.watch, std::mem::take(&mut skipped))
                        .await
                    {
                        Ok(()) if count > 0 => {
                            tracing::info!(flow = %self.flow, path = %self.watch.path, files = count, "Folder watch skipped the files already there.");
                        }
                        Ok(()) => {}
                        Err(error) => {
                            tracing::warn!(flow = %self.flow, error = %crate::error::chain(&error), "Cannot record the start of a folder watch.");
                        }
                    }
                }
                Found::Settled(path, stat) => {
                    self.settled(&mut memory, &path, stat, &tx, stop).await;
                }
            }
        }
    }

    /// Resolves the folder (created when missing) and starts watching it.
    async fn start_folder(
        &self,
        first: FirstListing,
        out: UnboundedSender<Found>,
    ) -> Option<folder::FolderWatch> {
        let files = self.service.engine().config().files.clone();
        let watch = self.watch.clone();
        let started = tokio::task::spawn_blocking(move || {
            let folder = files.resolve(&watch.path).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(folder.as_path()).map_err(|e| e.to_string())?;
            let pattern = watch.file_pattern()?;
            let spec = Spec {
                folder: std::fs::canonicalize(folder.as_path()).map_err(|e| e.to_string())?,
                pattern,
                recursive: watch.recursive,
                settle: watch.settle(),
            };
            folder::start(spec, first, out).map_err(|e| e.to_string())
        })
        .await;
        match started {
            Ok(Ok(guard)) => {
                tracing::info!(flow = %self.flow, path = %self.watch.path, pattern = self.watch.pattern.as_deref().unwrap_or("*"), "Folder watch started.");
                Some(guard)
            }
            Ok(Err(error)) => {
                tracing::error!(flow = %self.flow, path = %self.watch.path, error = %error, "Cannot watch the folder.");
                None
            }
            Err(_) => None,
        }
    }

    /// A file settled: starts its run unless this version of it was handled.
    async fn settled(
        &self,
        memory: &mut Memory,
        path: &Path,
        stat: Stat,
        retry: &UnboundedSender<Found>,
        stop: &CancellationToken,
    ) {
        let Some(file) = self.file_param(path) else {
            return;
        };
        if memory.handled(&file, stat) {
            return;
        }
        let Some(flow) = self.library.flow(&self.flow) else {
            return;
        };
        let mut params = Map::new();
        params.insert("file".to_owned(), Value::String(file.clone()));
        let mut request = RunRequest::new(params);
        request.trigger = TriggerInfo {
            kind: "watch".to_owned(),
            detail: json!({"path": self.watch.path, "pattern": self.watch.pattern, "file": file}),
        };
        let key = idempotency_key(&file, stat);
        match self.service.start(&flow, request, Some(key)).await {
            Ok(admitted) => {
                let run = admitted.run().id;
                tracing::info!(flow = %self.flow, file = %file, run_id = %run, "Folder watch started a run.");
                if let Err(error) = memory.remember(&file, stat, run).await {
                    tracing::warn!(flow = %self.flow, file = %file, error = %crate::error::chain(&error), "Cannot record a handled file; its run is not repeated (idempotency key).");
                }
            }
            Err(AcceptError::Store(error)) => {
                tracing::warn!(flow = %self.flow, file = %file, error = %crate::error::chain(&error), "Cannot start a run for a file; trying again shortly.");
                let retry = retry.clone();
                let stop = stop.clone();
                let path = path.to_path_buf();
                tokio::spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => { retry.send(Found::Settled(path, stat)).ok(); }
                        () = stop.cancelled() => {}
                    }
                });
            }
            Err(error) => {
                tracing::error!(flow = %self.flow, file = %file, error = %error, "The folder watch cannot start a run for this file.");
            }
        }
    }

    /// The file's path as the run sees it: relative to the data directory when inside it.
    fn file_param(&self, path: &Path) -> Option<String> {
        let data_dir = self.service.engine().config().files.data_dir();
        let shown = path.strip_prefix(data_dir).unwrap_or(path);
        let text = shown.to_str();
        if text.is_none() {
            tracing::warn!(flow = %self.flow, file = %path.display(), "Skipping a file whose name is not UTF-8.");
        }
        text.map(str::to_owned)
    }
}

/// The idempotency key of one version of a file.
fn idempotency_key(file: &str, stat: Stat) -> String {
    let mut hash = Sha256::new();
    hash.update(file.as_bytes());
    hash.update([0]);
    hash.update(stat.size.to_be_bytes());
    hash.update(stat.mtime_ns.to_be_bytes());
    format!("watch:{}", hex::encode(hash.finalize()))
}

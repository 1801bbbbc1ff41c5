//! Live notice of changes to the runs this node is running, for `?follow=true` log streams:
//! a per-run counter that goes up whenever the run stores log lines or changes status. And
//! the end of a run, for those waiting on it before it even started ([`RunFeed::watch_end`]:
//! webhooks with `wait: true`), with the run's final record when this node ended it, so a
//! waiter need not read it back from the store.
//!
//! On a store with other nodes, the same views reach runs that another node runs: a node
//! following such a run sends a [`Notice::Follow`]; the node running it then sends
//! [`Notice::Changed`] at its changes and [`Notice::Ended`] at its end (see `notices`). A
//! follow that arrives after the run ended here — the run was quicker than the notice — is
//! answered with [`Notice::Ended`] at once, from a memory of the runs that ended lately.

mod recent;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::engine::{Observer, RunEvent};
use crate::store::{Notice, Progress, Run, RunId};
use recent::RecentIds;

/// How long a follow heard for a run that does not run here is kept, in case this node
/// claims it; and how long a run that ended here is remembered, for follows that arrive
/// late.
const REMEMBER_FOR: Duration = Duration::from_secs(60);
/// Past this many, the oldest remembered follows (or ended runs) are forgotten.
const REMEMBER_MOST: usize = 16_384;

/// A run running here: its change counter, whether another node follows it, and the last
/// progress its external job reported (which the engine's own record of the run lacks).
#[derive(Debug)]
struct Live {
    changes: watch::Sender<u64>,
    followed_elsewhere: bool,
    progress: Option<Progress>,
}

/// What a waiter for a run's end sees: not yet, or ended — with the final record when the
/// end was this node's.
#[derive(Debug, Clone, Default)]
enum End {
    #[default]
    NotYet,
    Ended(Option<Arc<Run>>),
}

/// The live runs of this node and a change counter for each.
#[derive(Debug)]
pub struct RunFeed {
    runs: Mutex<HashMap<RunId, Live>>,
    /// Those waiting for a run's end, queued or running, by run.
    ends: Mutex<HashMap<RunId, watch::Sender<End>>>,
    /// Change counters of runs that other nodes run, followed here.
    remote: Mutex<HashMap<RunId, watch::Sender<u64>>>,
    /// Follows heard for runs not running here (yet): a run claimed soon after is told of.
    wanted: Mutex<RecentIds>,
    /// Runs that ended here lately, when notices go between nodes: a follow heard after the
    /// end is answered with it.
    ended_here: Mutex<RecentIds>,
    /// Where notices to other nodes go, when the store has other nodes.
    outbox: OnceLock<mpsc::UnboundedSender<Notice>>,
}

impl Default for RunFeed {
    fn default() -> Self {
        Self {
            runs: Mutex::default(),
            ends: Mutex::default(),
            remote: Mutex::default(),
            wanted: Mutex::new(RecentIds::new(REMEMBER_MOST, REMEMBER_FOR)),
            ended_here: Mutex::new(RecentIds::new(REMEMBER_MOST, REMEMBER_FOR)),
            outbox: OnceLock::new(),
        }
    }
}

impl RunFeed {
    /// Starts the feed of a run that is about to run here.
    pub(crate) fn open(&self, id: RunId) {
        let followed_elsewhere = self
            .wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&id);
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.entry(id).or_insert_with(|| Live {
            changes: watch::channel(0).0,
            followed_elsewhere,
            progress: None,
        });
    }

    /// Notes the progress an external job reported for run `id`, when it runs here: its
    /// final record, told to those waiting for its end, carries it.
    pub(crate) fn progress(&self, id: &RunId, progress: &Progress) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = runs.get_mut(id) {
            live.progress = Some(progress.clone());
        }
    }

    /// Ends the feed of a run that ended, with its final record when the engine returned
    /// one; followers see the channel close, those waiting for the end get the record, and
    /// other nodes following it hear of the end.
    pub(crate) fn close(&self, id: &RunId, mut record: Option<Run>) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = runs.remove(id) {
            if let (Some(run), Some(progress)) = (record.as_mut(), live.progress) {
                run.progress = Some(progress);
            }
            live.changes.send_modify(|n| *n += 1);
            if live.followed_elsewhere {
                self.send(Notice::Ended(*id));
            } else if self.hears_other_nodes() {
                // Under the `runs` lock: a follow heard from now on finds it here.
                self.ended_here
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .note(*id);
            }
        }
        drop(runs);
        self.ended(id, record.map(Arc::new));
    }

    /// Sends notices to other nodes through `outbox` from now on.
    pub(crate) fn set_outbox(&self, outbox: mpsc::UnboundedSender<Notice>) {
        let _ = self.outbox.set(outbox);
    }

    /// Whether notices go between this node and others: runs another node runs are then
    /// followed live, and the store need only be read again now and then.
    pub fn hears_other_nodes(&self) -> bool {
        self.outbox.get().is_some()
    }

    /// Sends a notice to the other nodes, when there are any.
    pub(crate) fn send(&self, notice: Notice) {
        if let Some(outbox) = self.outbox.get() {
            let _ = outbox.send(notice);
        }
    }

    /// Another node follows run `id`: when it runs here (now, or once claimed within a
    /// minute), its changes and its end are told; when it ended here lately, its end is
    /// told at once.
    pub(crate) fn followed_elsewhere(&self, id: &RunId) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = runs.get_mut(id) {
            live.followed_elsewhere = true;
            return;
        }
        let ended = self
            .ended_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id);
        drop(runs);
        if ended {
            self.send(Notice::Ended(*id));
        } else {
            self.wanted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .note(*id);
        }
    }

    /// Another node told of a change (or the end) of run `id`, which it runs.
    pub(crate) fn changed_elsewhere(&self, id: &RunId) {
        let remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = remote.get(id) {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Follows a run that may run on another node: the receiver changes when that node tells
    /// of a change or the end (the node is asked to, here). Forgotten when dropped.
    pub fn follow_elsewhere(self: &Arc<Self>, id: RunId) -> RemoteFollow {
        let rx = {
            let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
            remote
                .entry(id)
                .or_insert_with(|| watch::channel(0).0)
                .subscribe()
        };
        self.send(Notice::Follow(id));
        RemoteFollow {
            feed: self.clone(),
            id,
            rx,
        }
    }

    /// Tells those waiting for the run's end that it ended, with its final record when this
    /// node has it.
    pub(crate) fn ended(&self, id: &RunId, record: Option<Arc<Run>>) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = ends.remove(id) {
            tx.send_replace(End::Ended(record));
        }
    }

    /// Waits for the end of a run, queued or running: the returned watch fires when this
    /// node ends it. A run ended by another node is not seen here: a waiter also looks at the
    /// store now and then. Register before reading the run's status, so no end is missed.
    pub fn watch_end(self: &Arc<Self>, id: RunId) -> EndWatch {
        let watch = self.watch_end_here(id);
        // Another node may run it: ask it to tell of the end.
        self.send(Notice::Follow(id));
        watch
    }

    /// Waits for the end of a run that is to run on this node.
    pub(crate) fn watch_end_here(self: &Arc<Self>, id: RunId) -> EndWatch {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = ends
            .entry(id)
            .or_insert_with(|| watch::channel(End::NotYet).0)
            .subscribe();
        drop(ends);
        EndWatch {
            feed: self.clone(),
            id,
            rx,
        }
    }

    /// Notes a change of the run (told to other nodes that follow it).
    pub(crate) fn touch(&self, id: &RunId) {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = runs.get(id) {
            live.changes.send_modify(|n| *n += 1);
            if live.followed_elsewhere {
                self.send(Notice::Changed(*id));
            }
        }
    }

    /// Follows a run running on this node: the receiver changes with the run and closes when
    /// it ends. `None` when the run is not running here.
    pub fn follow(&self, id: &RunId) -> Option<watch::Receiver<u64>> {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.get(id).map(|live| live.changes.subscribe())
    }

    /// An observer of one run that feeds its changes here.
    pub(crate) fn observer(self: &std::sync::Arc<Self>, id: RunId) -> RunFeedObserver {
        RunFeedObserver {
            feed: self.clone(),
            id,
        }
    }
}

/// A wait for one run's end (see [`RunFeed::watch_end`]); forgotten when dropped.
#[derive(Debug)]
pub struct EndWatch {
    feed: Arc<RunFeed>,
    id: RunId,
    rx: watch::Receiver<End>,
}

impl EndWatch {
    /// Returns once this node has ended the run, with its final record when this node has
    /// it (`None`: read it from the store).
    pub async fn ended(&mut self) -> Option<Arc<Run>> {
        // An error means the sender is gone: the run ended (or the feed did).
        match self.rx.wait_for(|end| matches!(end, End::Ended(_))).await {
            Ok(end) => match &*end {
                End::Ended(record) => record.clone(),
                End::NotYet => None,
            },
            Err(_) => None,
        }
    }
}

impl Drop for EndWatch {
    fn drop(&mut self) {
        let mut ends = self
            .feed
            .ends
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if ends
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            ends.remove(&self.id);
        }
    }
}

/// A follow of a run that may run on another node (see [`RunFeed::follow_elsewhere`]);
/// forgotten when dropped.
#[derive(Debug)]
pub struct RemoteFollow {
    feed: Arc<RunFeed>,
    id: RunId,
    rx: watch::Receiver<u64>,
}

impl RemoteFollow {
    /// Returns at the next change the running node tells of.
    pub async fn changed(&mut self) {
        // The sender lives while this follow does.
        let _ = self.rx.changed().await;
    }

    /// Asks the node running the run again to tell of its changes (it may have started
    /// running it since).
    pub fn ask_again(&self) {
        self.feed.send(Notice::Follow(self.id));
    }
}

impl Drop for RemoteFollow {
    fn drop(&mut self) {
        let mut remote = self
            .feed
            .remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remote
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            remote.remove(&self.id);
        }
    }
}

/// Feeds one run's events to the [`RunFeed`].
pub(crate) struct RunFeedObserver {
    feed: std::sync::Arc<RunFeed>,
    id: RunId,
}

impl Observer for RunFeedObserver {
    fn on_event(&self, event: &RunEvent<'_>) {
        if !matches!(event, RunEvent::DataChanged(_)) {
            self.feed.touch(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_see_changes_and_the_end() {
        let feed = RunFeed::default();
        let id = RunId::new();
        assert!(feed.follow(&id).is_none());
        feed.open(id);
        let mut rx = feed.follow(&id).unwrap();
        feed.touch(&id);
        rx.changed().await.unwrap();
        feed.close(&id, None);
        // Followers see the last change, then the channel closes.
        rx.changed().await.unwrap();
        assert!(rx.changed().await.is_err());
        assert!(feed.follow(&id).is_none());
    }

    #[tokio::test]
    async fn end_waiters_hear_the_end_and_are_forgotten() {
        let feed = Arc::new(RunFeed::default());
        let id = RunId::new();
        let mut first = feed.watch_end(id);
        let second = feed.watch_end(id);
        drop(second);
        assert_eq!(feed.ends.lock().unwrap().len(), 1);
        feed.open(id);
        feed.close(&id, None);
        first.ended().await;
        assert!(feed.ends.lock().unwrap().is_empty());
        // A waiter that gives up leaves nothing behind.
        let other = feed.watch_end(RunId::new());
        drop(other);
        assert!(feed.ends.lock().unwrap().is_empty());
    }

    /// Those waiting for a run's end get its final record, with the progress its external
    /// job reported meanwhile (which the engine's record lacks).
    #[tokio::test]
    async fn the_end_carries_the_final_record_and_its_progress() {
        let feed = Arc::new(RunFeed::default());
        let id = RunId::new();
        let mut end = feed.watch_end_here(id);
        feed.open(id);
        let progress = Progress {
            current: Some(3.0),
            total: Some(4.0),
            message: Some("three of four".to_owned()),
        };
        feed.progress(&id, &progress);
        let record: Run = serde_json::from_value(serde_json::json!({
            "id": id, "flow": "f", "flow_version": "v", "status": "succeeded",
            "params": {}, "trigger": {"kind": "webhook", "detail": {}},
            "concurrency_key": null, "parent_run_id": null,
            "created_at": "2026-12-06T10:00:00Z", "started_at": null, "finished_at": null,
            "error": null, "data": {"out": 1}, "node": null, "message": null
        }))
        .unwrap();
        feed.close(&id, Some(record));
        let ended = end.ended().await.expect("the record");
        assert_eq!(ended.data, serde_json::json!({"out": 1}));
        assert_eq!(ended.progress, Some(progress));
        // Ended elsewhere: no record, the waiter reads the store.
        let other = RunId::new();
        let mut end = feed.watch_end(other);
        feed.ended(&other, None);
        assert!(end.ended().await.is_none());
    }

    /// A follow from another node that arrives after the run ended here is answered with
    /// the end at once; one for a run that never ran here is kept for when it does.
    #[tokio::test]
    async fn a_follow_heard_after_the_end_is_answered_with_it() {
        let feed = RunFeed::default();
        let (outbox, mut sent) = mpsc::unbounded_channel();
        feed.set_outbox(outbox);
        let quick = RunId::new();
        feed.open(quick);
        feed.close(&quick, None);
        assert!(sent.try_recv().is_err(), "nobody followed it yet");
        feed.followed_elsewhere(&quick);
        assert_eq!(sent.try_recv().ok(), Some(Notice::Ended(quick)));

        let later = RunId::new();
        feed.followed_elsewhere(&later);
        assert!(sent.try_recv().is_err());
        feed.open(later);
        feed.close(&later, None);
        assert_eq!(sent.try_recv().ok(), Some(Notice::Ended(later)));
    }
}

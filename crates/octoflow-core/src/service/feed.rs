//! Live notice of changes to the runs this node is running, for `?follow=true` log streams:
//! a per-run counter that goes up whenever the run stores log lines or changes status. And
//! the end of a run, for those waiting on it before it even started ([`RunFeed::watch_end`]:
//! webhooks with `wait: true`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::engine::{Observer, RunEvent};
use crate::store::RunId;

/// The live runs of this node and a change counter for each.
#[derive(Debug, Default)]
pub struct RunFeed {
    runs: Mutex<HashMap<RunId, watch::Sender<u64>>>,
    /// Those waiting for a run's end, queued or running, by run.
    ends: Mutex<HashMap<RunId, watch::Sender<bool>>>,
}

impl RunFeed {
    /// Starts the feed of a run that is about to run here.
    pub(crate) fn open(&self, id: RunId) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.entry(id).or_insert_with(|| watch::channel(0).0);
    }

    /// Ends the feed of a run that ended; followers see the channel close.
    pub(crate) fn close(&self, id: &RunId) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = runs.remove(id) {
            tx.send_modify(|n| *n += 1);
        }
        drop(runs);
        self.ended(id);
    }

    /// Tells those waiting for the run's end that it ended (on this node).
    pub(crate) fn ended(&self, id: &RunId) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = ends.remove(id) {
            tx.send_replace(true);
        }
    }

    /// Waits for the end of a run, queued or running: the returned watch fires when this
    /// node ends it. A run ended by another node is not seen here: a waiter also looks at the
    /// store now and then. Register before reading the run's status, so no end is missed.
    pub fn watch_end(self: &Arc<Self>, id: RunId) -> EndWatch {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = ends
            .entry(id)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        EndWatch {
            feed: self.clone(),
            id,
            rx,
        }
    }

    /// Notes a change of the run.
    pub(crate) fn touch(&self, id: &RunId) {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = runs.get(id) {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Follows a run running on this node: the receiver changes with the run and closes when
    /// it ends. `None` when the run is not running here.
    pub fn follow(&self, id: &RunId) -> Option<watch::Receiver<u64>> {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.get(id).map(watch::Sender::subscribe)
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
    rx: watch::Receiver<bool>,
}

impl EndWatch {
    /// Returns once this node has ended the run.
    pub async fn ended(&mut self) {
        // An error means the sender is gone: the run ended (or the feed did).
        let _ = self.rx.wait_for(|ended| *ended).await;
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
        feed.close(&id);
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
        feed.close(&id);
        first.ended().await;
        assert!(feed.ends.lock().unwrap().is_empty());
        // A waiter that gives up leaves nothing behind.
        let other = feed.watch_end(RunId::new());
        drop(other);
        assert!(feed.ends.lock().unwrap().is_empty());
    }
}

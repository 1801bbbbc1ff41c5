//! Live notice of changes to the runs this node is running, for `?follow=true` log streams:
//! a per-run counter that goes up whenever the run stores log lines or changes status.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use crate::engine::{Observer, RunEvent};
use crate::store::RunId;

/// The live runs of this node and a change counter for each.
#[derive(Debug, Default)]
pub struct RunFeed {
    runs: Mutex<HashMap<RunId, watch::Sender<u64>>>,
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
}

//! This node's side of the notices between the nodes of one store (see
//! [`NoticeStore`](crate::store::NoticeStore)): it sends what its feed has to tell, and acts
//! on what the others tell — a follow of a run it runs, a change or the end of a run it
//! follows, a cancel of a run it runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::Service;
use crate::store::{Notice, Store};

/// How long notices gather after a round that told of changes: the changes of one run
/// within it go out as one notice.
const GATHER: Duration = Duration::from_millis(20);
/// Most notices sent in one round.
const ROUND: usize = 512;

impl Service {
    /// Sends this node's notices and acts on the other nodes' until `shutdown`. Returns at
    /// once when the store has no other nodes.
    pub async fn exchange_notices(&self, shutdown: CancellationToken) {
        let store = self.store().clone();
        let Some(mut heard) = store.notices() else {
            return;
        };
        let (outbox, queued) = mpsc::unbounded_channel();
        self.inner.feed.set_outbox(outbox);
        let sender = tokio::spawn(send_notices(store, queued));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                notice = heard.recv() => match notice {
                    Ok(notice) => self.on_notice(notice),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // Views fall back on reading the store; nothing is lost.
                        tracing::debug!(missed, "Notices missed.");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        sender.abort();
    }

    /// Acts on another node's notice.
    fn on_notice(&self, notice: Notice) {
        let feed = &self.inner.feed;
        match notice {
            Notice::Follow(id) => feed.followed_elsewhere(&id),
            Notice::Changed(id) => feed.changed_elsewhere(&id),
            Notice::Ended(id) => {
                feed.changed_elsewhere(&id);
                feed.ended(&id, None);
            }
            Notice::Cancel(id) => {
                self.cancel_local(&id);
            }
        }
    }
}

/// Sends the queued notices, in order, a round at a time in one store write: a round is what
/// queued while the last one was sent. The changes of one run in a round go out once, and
/// after a round with changes the next gathers for a moment, so a run followed elsewhere
/// while it writes many log lines sends a change notice at most every `GATHER`.
async fn send_notices(store: Arc<dyn Store>, mut queued: mpsc::UnboundedReceiver<Notice>) {
    let mut round = Vec::with_capacity(ROUND);
    while queued.recv_many(&mut round, ROUND).await > 0 {
        let mut changed = HashSet::new();
        round.retain(|notice| match notice {
            Notice::Changed(id) => changed.insert(*id),
            _ => true,
        });
        if let Err(error) = store.notify(&round).await {
            tracing::warn!(error = %crate::error::chain(&error), "Cannot send notices to the other nodes.");
        }
        round.clear();
        if !changed.is_empty() {
            tokio::time::sleep(GATHER).await;
        }
    }
}

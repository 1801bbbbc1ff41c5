//! Whether a run's record is in the store yet, and the one place that writes it.
//!
//! A run this node owns is normally recorded `running` before it starts. A run its caller
//! waits for, whose steps all touch nothing outside the run (see
//! [`Flow::side_effect_free`](crate::flow::Flow::side_effect_free)), may start *deferred*:
//! it is recorded once, with its step records, at its end — one store write instead of two
//! — unless it writes anything else first (a log line, a step record it cannot hold) or
//! outlasts [`RECORD_RUNNING_AFTER`]: then it is recorded `running` at that moment, and
//! goes on as any other run. Until then nothing of it exists outside this process, and
//! nothing it did can be seen outside it either: a node that dies meanwhile leaves nothing
//! behind, and the caller, still without an answer, sees its request fail.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Fence, Run, RunUpdate, StepRun, Store, StoreError};

/// A deferred run still going after this long is recorded `running`, so lists, live views
/// and the lease that finds a dead node's runs see it (as a step is, see `step.rs`).
pub(super) const RECORD_RUNNING_AFTER: Duration = Duration::from_millis(100);

/// The record of one run: written already, or to be written.
pub(super) struct Recording {
    store: Arc<dyn Store>,
    lease: Duration,
    /// The `running` record to write before anything else of the run, while it is unwritten.
    pending: tokio::sync::Mutex<Option<Arc<Run>>>,
}

impl Recording {
    /// A run whose record is in the store already.
    pub(super) fn stored(store: Arc<dyn Store>, lease: Duration) -> Self {
        Self {
            store,
            lease,
            pending: tokio::sync::Mutex::new(None),
        }
    }

    /// A run owned here but not recorded yet: `run` is its `running` record.
    pub(super) fn deferred(store: Arc<dyn Store>, lease: Duration, run: Arc<Run>) -> Self {
        Self {
            pending: tokio::sync::Mutex::new(Some(run)),
            ..Self::stored(store, lease)
        }
    }

    /// Whether the run is still unrecorded (a racing [`ensure`](Self::ensure) may be
    /// recording it now).
    pub(super) fn is_deferred(&self) -> bool {
        match self.pending.try_lock() {
            Ok(pending) => pending.is_some(),
            Err(_) => true,
        }
    }

    /// Makes sure the run is in the store, `running` and leased, before something else of
    /// it is written.
    pub(super) async fn ensure(&self) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().await;
        if let Some(run) = pending.as_ref() {
            self.store.insert_owned(run, self.lease).await?;
            *pending = None;
        }
        Ok(())
    }

    /// Records the run's end with the step records still held: `ended` in one write when
    /// the run was never recorded, else its end applied to its record under `fence`.
    pub(super) async fn end(
        &self,
        fence: &Fence,
        held: &[StepRun],
        ended: &Run,
    ) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().await;
        if pending.is_some() {
            self.store.insert_ended(ended, held).await?;
            *pending = None;
            Ok(())
        } else {
            self.store
                .end_run(fence, held, &RunUpdate::ended(ended))
                .await
        }
    }
}

//! A running run's lease: renewed by its executor while it runs the run, so that a run whose
//! process died is found once the lease ends (SPEC §9). A cancel request seen at a renewal
//! cancels the run; a lost lease (the run was taken over or ended elsewhere) stops it.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

use crate::error::chain;
use crate::store::{Fence, LeaseState, Store};

/// Renews one run's lease until dropped.
pub(super) struct LeaseKeeper {
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing the lease of the run `fence` holds every `every`, for `lease` each
    /// time; `cancel` is cancelled when someone asks to cancel the run or the lease is lost.
    pub(super) fn start(
        store: Arc<dyn Store>,
        fence: Fence,
        lease: Duration,
        every: Duration,
        cancel: CancellationToken,
    ) -> Self {
        let task = tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.renew(&fence, lease).await {
                        Ok(LeaseState::Held) => {}
                        Ok(LeaseState::CancelRequested) => {
                            if !cancel.is_cancelled() {
                                tracing::info!(run_id = %fence.run, "Run cancelled on request.");
                                cancel.cancel();
                            }
                        }
                        Ok(LeaseState::Lost) => {
                            tracing::warn!(run_id = %fence.run, "Run's lease was lost; stopping it.");
                            cancel.cancel();
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(run_id = %fence.run, error = %chain(&error), "Cannot renew a run's lease.");
                        }
                    }
                }
            }
            .with_current_subscriber(),
        );
        Self { task }
    }
}

impl Drop for LeaseKeeper {
    /// The run ended (or its executor was dropped, or panicked): no more renewals.
    fn drop(&mut self) {
        self.task.abort();
    }
}

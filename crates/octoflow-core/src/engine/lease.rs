//! A running run's lease: renewed by its executor, beside the run's steps in their task, so
//! that a run whose process died is found once the lease ends (SPEC §9). A cancel request
//! seen at a renewal cancels the run; a lost lease (the run was taken over or ended
//! elsewhere) stops it. A deferred run (see `recording.rs`) still going after
//! [`RECORD_RUNNING_AFTER`] is recorded here first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::recording::{RECORD_RUNNING_AFTER, Recording};
use crate::error::chain;
use crate::store::{Fence, LeaseState, Store};

/// Keeps the lease of the run `fence` holds: renews it every `every`, for `lease` each time.
/// `cancel` is cancelled when someone asks to cancel the run; returns, cancelling `cancel`,
/// when the lease is lost or when the run, still unrecorded, cannot be recorded.
pub(super) async fn keep(
    store: Arc<dyn Store>,
    recording: Arc<Recording>,
    (fence, lease, every): (Fence, Duration, Duration),
    cancel: CancellationToken,
) {
    if recording.is_deferred() {
        tokio::time::sleep(RECORD_RUNNING_AFTER).await;
        if let Err(error) = recording.ensure().await {
            tracing::error!(run_id = %fence.run, error = %chain(&error), "Cannot record a running run; stopping it.");
            cancel.cancel();
            return;
        }
    }
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

/// Runs `work` while `keeper` ([`keep`]) keeps its run's lease, both in the calling task (a
/// short run starts and stops no task for its lease); the keeping ends with `work`, or
/// earlier if the keeper gives up.
pub(super) async fn keeping<T>(
    keeper: impl Future<Output = ()>,
    work: impl Future<Output = T>,
) -> T {
    let keeper = async {
        keeper.await;
        std::future::pending::<Infallible>().await
    };
    tokio::select! {
        biased;
        out = work => out,
        never = keeper => match never {},
    }
}

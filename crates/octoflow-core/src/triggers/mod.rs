//! Triggers that fire inside a node (SPEC §7): folder watches and flow triggers. (Webhooks
//! are served by the HTTP server, schedules fired by [`crate::scheduler`].)
//!
//! [`start`] follows a [`FlowLibrary`]: on every change of the library the set of running
//! folder watches and the index of flow triggers are brought in line with the flows' current
//! triggers, so a trigger added, changed or removed in a flow file takes effect at the next
//! reload. Runs are started through the [`Service`], under each flow's concurrency rule,
//! with an idempotency key that makes each file version and each upstream run start a run
//! once.
//!
//! - **Folder watches**: `notify` reports changes; a file starts a run once its
//!   size and modification time have not changed for `settle` (one timer per file, one look
//!   at the file when it is due; no directory polling). Handled files are remembered in the
//!   store across restarts.
//! - **Flow triggers** ([`FlowTriggers`]): when a run of this node ends, the flows waiting for its
//!   flow and status are started with the upstream run's id, flow, status and data.

mod chain;
mod folder;
mod memory;
mod settle;
mod watch;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use chain::Ended;
pub use chain::{FlowTriggers, MAX_DEPTH};

use crate::library::FlowLibrary;
use crate::service::Service;

/// The state namespace where the folder watches of `flow` remember the files they handled:
/// `__watch__.<flow>` (no flow can have that name).
pub fn watch_state_namespace(flow: &str) -> String {
    memory::namespace(flow)
}

/// The folder watches and flow triggers of a node, from [`start`].
pub struct Triggers {
    watches: JoinHandle<()>,
    chain: JoinHandle<()>,
    stop_chain: CancellationToken,
}

/// Tells `service`'s flow triggers which flows wait for which (from `library`), so the
/// ends of runs told before [`start`] — those a start-up hand-back ends — are kept for them.
pub fn prepare(service: &Service, library: &FlowLibrary) {
    service.flow_triggers().follow(&library.entries());
}

/// Starts the folder watches and flow triggers of `library`'s flows on `service`. The
/// watches stop when `shutdown` is cancelled; flow triggers go on firing for the runs that
/// end while the workers drain, until [`Triggers::stop`].
///
/// # Panics
/// When the triggers of `service` were started before.
pub fn start(
    service: &Service,
    library: &Arc<FlowLibrary>,
    shutdown: CancellationToken,
) -> Triggers {
    prepare(service, library);
    let queue = service
        .take_ended_queue()
        .expect("the triggers of a service start once");
    let stop_chain = CancellationToken::new();
    let chain = tokio::spawn(chain::run(
        service.clone(),
        library.clone(),
        queue,
        stop_chain.clone(),
    ));
    let watches = tokio::spawn(follow(service.clone(), library.clone(), shutdown));
    Triggers {
        watches,
        chain,
        stop_chain,
    }
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers").finish_non_exhaustive()
    }
}

impl Triggers {
    /// Waits for the folder watches to stop (after the `shutdown` given to [`start`]), then
    /// stops the flow triggers once the runs that ended by now have started their
    /// downstream runs. Call it after the workers have stopped.
    pub async fn stop(self) {
        self.watches.await.ok();
        self.stop_chain.cancel();
        self.chain.await.ok();
    }
}

/// Keeps the watches and the flow triggers' index in line with the library until `shutdown`.
async fn follow(service: Service, library: Arc<FlowLibrary>, shutdown: CancellationToken) {
    let mut changes = library.subscribe();
    let mut watches = watch::Watches::new(service.clone(), library.clone());
    loop {
        changes.borrow_and_update();
        let entries = library.entries();
        service.flow_triggers().follow(&entries);
        watches.follow(&entries);
        tokio::select! {
            next = changes.changed() => if next.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    watches.stop().await;
}

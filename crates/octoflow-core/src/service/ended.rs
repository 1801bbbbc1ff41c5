//! The ends of runs on this node, told to the flow triggers ([`crate::triggers`]): by the
//! workers when a run they ran ends, by a cancel that ends a queued run, and by the hand-back
//! of a run whose node died. The service owns the [`FlowTriggers`] from its start, so an end
//! told before the triggers run (a hand-back at start-up) waits in their queue. Telling is
//! cheap and never waits: the flow triggers look the flow up in their index and queue the run
//! only when a flow waits for it.

use std::sync::PoisonError;

use tokio::sync::mpsc::UnboundedReceiver;

use super::Service;
use crate::store::{Run, RunId};
use crate::triggers::{Ended, FlowTriggers};

impl Service {
    /// The flow triggers told of the runs that end here.
    pub(crate) fn flow_triggers(&self) -> &FlowTriggers {
        &self.inner.flow_triggers
    }

    /// The queue of ended runs a flow waits for, for the one task that starts their
    /// downstream runs; `None` once taken.
    pub(crate) fn take_ended_queue(&self) -> Option<UnboundedReceiver<Ended>> {
        self.inner
            .ended_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Tells the flow triggers that `run` (its final record) ended on this node.
    pub(crate) fn run_ended(&self, run: &Run) {
        self.inner.flow_triggers.ended(run);
    }

    /// Tells the flow triggers that the run `id` may have ended (they read it again when a
    /// flow waits for any run).
    pub(crate) fn run_ended_by_id(&self, id: RunId) {
        self.inner.flow_triggers.ended_id(id);
    }
}

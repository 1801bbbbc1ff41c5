//! The ends of runs on this node, told to the flow triggers ([`crate::triggers`]): by the
//! workers when a run they ran ends, by a cancel that ends a queued run, and by the hand-back
//! of a run whose node died. Telling is cheap and never waits: the flow triggers look the
//! flow up in their index and queue the run only when a flow waits for it.

use std::sync::{Arc, PoisonError};

use super::Service;
use crate::store::{Run, RunId};
use crate::triggers::FlowTriggers;

impl Service {
    /// Installs (or, with `None`, removes) the flow triggers told of ended runs.
    pub(crate) fn set_flow_triggers(&self, chain: Option<Arc<FlowTriggers>>) {
        *self
            .inner
            .chain
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = chain;
    }

    fn flow_triggers(&self) -> Option<Arc<FlowTriggers>> {
        self.inner
            .chain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Tells the flow triggers that `run` (its final record) ended on this node.
    pub(crate) fn run_ended(&self, run: &Run) {
        if let Some(chain) = self.flow_triggers() {
            chain.ended(run);
        }
    }

    /// Tells the flow triggers that the run `id` may have ended (they read it again when a
    /// flow waits for any run).
    pub(crate) fn run_ended_by_id(&self, id: RunId) {
        if let Some(chain) = self.flow_triggers() {
            chain.ended_id(id);
        }
    }
}

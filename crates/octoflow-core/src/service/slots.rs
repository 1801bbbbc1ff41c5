//! The worker slots of a node, shared by its dispatcher, which claims queued runs for free
//! slots, and by the runs a waiting caller starts here ([`Service::start_waited`]), which
//! take a slot before they are recorded and are handed to the dispatcher to run.
//!
//! [`Service::start_waited`]: super::Service::start_waited

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, mpsc};

use crate::store::Run;

/// A run to run on this node, with the slot it holds.
#[derive(Debug)]
pub(super) struct HandOff {
    pub(super) run: Run,
    pub(super) slot: Slot,
    /// False for a run started here that is not recorded yet: it is recorded at its end
    /// (see [`Engine::execute_deferred`](crate::engine::Engine::execute_deferred)).
    pub(super) recorded: bool,
}

/// The slots of one node.
#[derive(Debug)]
pub(super) struct Slots {
    capacity: usize,
    busy: AtomicUsize,
    /// Told whenever a slot frees.
    freed: Notify,
    /// The dispatcher's queue of runs started here; `None` while no dispatcher runs.
    hand_off: Mutex<Option<mpsc::UnboundedSender<HandOff>>>,
}

/// One taken slot; freed when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.busy.fetch_sub(1, Ordering::AcqRel);
        self.slots.freed.notify_one();
    }
}

impl Slots {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            busy: AtomicUsize::new(0),
            freed: Notify::new(),
            hand_off: Mutex::new(None),
        })
    }

    /// Takes up to `most` free slots (none when all are busy).
    pub(super) fn take_up_to(self: &Arc<Self>, most: usize) -> Vec<Slot> {
        let mut taken = 0;
        let _ = self
            .busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                taken = self.capacity.saturating_sub(busy).min(most);
                (taken > 0).then_some(busy + taken)
            });
        (0..taken)
            .map(|_| Slot {
                slots: self.clone(),
            })
            .collect()
    }

    /// Waits until a slot frees (or one freed since the last wait).
    pub(super) async fn freed(&self) {
        self.freed.notified().await;
    }

    /// A free slot for a run to start here, when a dispatcher runs and a slot is free.
    pub(super) fn take_for_here(self: &Arc<Self>) -> Option<Slot> {
        if self
            .hand_off
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(mpsc::UnboundedSender::is_closed)
        {
            return None;
        }
        self.take_up_to(1).pop()
    }

    /// Hands a run started here to the dispatcher; when none runs, gives the run back, for
    /// the caller to put it in the queue.
    #[must_use]
    pub(super) fn hand_off(&self, started: HandOff) -> Option<Run> {
        let hand_off = self.hand_off.lock().unwrap_or_else(PoisonError::into_inner);
        match hand_off.as_ref() {
            Some(queue) => queue.send(started).err().map(|failed| failed.0.run),
            None => Some(started.run),
        }
    }

    /// The dispatcher's side: runs started here arrive on the receiver until it is dropped.
    pub(super) fn open_hand_off(&self) -> mpsc::UnboundedReceiver<HandOff> {
        let (queue, arrivals) = mpsc::unbounded_channel();
        *self.hand_off.lock().unwrap_or_else(PoisonError::into_inner) = Some(queue);
        arrivals
    }

    /// The dispatcher stops taking runs started here.
    pub(super) fn close_hand_off(&self) {
        self.hand_off
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_up_to_capacity_and_freed_on_drop() {
        let slots = Slots::new(3);
        let two = slots.take_up_to(2);
        assert_eq!(two.len(), 2);
        let last = slots.take_up_to(5);
        assert_eq!(last.len(), 1, "only one was left");
        assert!(slots.take_up_to(1).is_empty());
        drop(two);
        assert_eq!(slots.take_up_to(5).len(), 2);
        drop(last);
    }

    #[test]
    fn no_slot_for_here_without_a_dispatcher() {
        let slots = Slots::new(2);
        assert!(slots.take_for_here().is_none());
        let arrivals = slots.open_hand_off();
        assert!(slots.take_for_here().is_some());
        drop(arrivals);
        assert!(slots.take_for_here().is_none(), "its queue closed");
    }
}

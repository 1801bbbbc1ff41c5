//! A bounded memory of run ids, newest kept: the follows heard for runs not running here,
//! and the runs that ended here lately. Past its capacity the oldest are forgotten, never
//! the newest — under load the id that matters is the one just heard.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::store::RunId;

/// Run ids with the time each was noted, at most `capacity`, each for at most `keep`.
#[derive(Debug)]
pub(super) struct RecentIds {
    noted: HashMap<RunId, Instant>,
    order: VecDeque<(RunId, Instant)>,
    capacity: usize,
    keep: Duration,
}

impl RecentIds {
    pub(super) fn new(capacity: usize, keep: Duration) -> Self {
        Self {
            noted: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            keep,
        }
    }

    /// Notes `id` now, forgetting the oldest beyond capacity.
    pub(super) fn note(&mut self, id: RunId) {
        let now = Instant::now();
        self.noted.insert(id, now);
        self.order.push_back((id, now));
        while self.order.len() > self.capacity {
            if let Some((old, at)) = self.order.pop_front()
                && self.noted.get(&old) == Some(&at)
            {
                self.noted.remove(&old);
            }
        }
    }

    /// Whether `id` was noted within `keep`.
    pub(super) fn contains(&self, id: &RunId) -> bool {
        self.noted
            .get(id)
            .is_some_and(|at| at.elapsed() < self.keep)
    }

    /// Forgets `id`; returns whether it was noted within `keep`.
    pub(super) fn take(&mut self, id: &RunId) -> bool {
        self.noted
            .remove(id)
            .is_some_and(|at| at.elapsed() < self.keep)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.noted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_are_kept_past_capacity() {
        let mut recent = RecentIds::new(3, Duration::from_secs(60));
        let ids: Vec<RunId> = (0..5).map(|_| RunId::new()).collect();
        for id in &ids {
            recent.note(*id);
        }
        assert_eq!(recent.len(), 3);
        assert!(!recent.contains(&ids[0]) && !recent.contains(&ids[1]));
        assert!(ids[2..].iter().all(|id| recent.contains(id)));
        assert!(recent.take(&ids[4]));
        assert!(!recent.take(&ids[4]), "taken once");
    }

    #[test]
    fn a_noted_id_is_kept_for_its_time_only() {
        let mut recent = RecentIds::new(3, Duration::ZERO);
        let id = RunId::new();
        recent.note(id);
        assert!(!recent.contains(&id));
        assert!(!recent.take(&id));
    }

    #[test]
    fn noting_again_renews() {
        let mut recent = RecentIds::new(2, Duration::from_secs(60));
        let (a, b, c) = (RunId::new(), RunId::new(), RunId::new());
        recent.note(a);
        recent.note(b);
        recent.note(a);
        recent.note(c);
        // `b` is the oldest once `a` was noted again.
        assert!(recent.contains(&a) && recent.contains(&c) && !recent.contains(&b));
    }
}

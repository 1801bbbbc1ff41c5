//! Files waiting to settle: each file a watch saw change has one timer, due `settle` after
//! the last change seen, holding the file's [`Stat`] at that change. When the timer is due
//! the file is looked at once more: unchanged, it has settled; changed, its timer starts
//! again. A new subfolder of a recursive watch has a timer too, for a second listing. No
//! directory is polled.

use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

/// What tells one version of a file from another: its size and modification time. A
/// file's identity for "each file once" is its path and its `Stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    /// Bytes.
    pub(super) size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 when unknown or earlier).
    pub(super) mtime_ns: u64,
}

impl Stat {
    /// The stat of a file's metadata.
    pub(super) fn of(meta: &Metadata) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            size: meta.len(),
            mtime_ns,
        }
    }
}

/// The timers of the files waiting to settle, soonest first.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// `(due, sequence)` → file; the sequence tells apart timers due at the same instant.
    due: BTreeMap<(Instant, u64), PathBuf>,
    /// Each waiting file's timer and stat.
    files: HashMap<PathBuf, (Instant, u64, Stat)>,
    next: u64,
}

impl Pending {
    /// (Re)starts the file's timer, due at `due`, remembering its stat now.
    pub(super) fn arm(&mut self, path: &Path, stat: Stat, due: Instant) {
        self.forget(path);
        self.next += 1;
        self.due.insert((due, self.next), path.to_path_buf());
        self.files
            .insert(path.to_path_buf(), (due, self.next, stat));
    }

    /// Stops waiting for the file (it is gone).
    pub(super) fn forget(&mut self, path: &Path) {
        if let Some((due, seq, _)) = self.files.remove(path) {
            self.due.remove(&(due, seq));
        }
    }

    /// When the soonest timer is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|(due, _)| *due)
    }

    /// Takes the files whose timers are due at `now`, with the stat each had when armed.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<(PathBuf, Stat)> {
        let mut out = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let path = entry.remove();
            if let Some((_, _, stat)) = self.files.remove(&path) {
                out.push((path, stat));
            }
        }
        out
    }

    /// How many files wait.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stat(size: u64) -> Stat {
        Stat { size, mtime_ns: 7 }
    }

    #[test]
    fn a_change_restarts_the_timer_and_only_due_files_are_taken() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut pending = Pending::default();
        pending.arm(Path::new("/in/a"), stat(1), t0 + s);
        pending.arm(Path::new("/in/b"), stat(1), t0 + Duration::from_secs(1) + s);
        // `a` changes again before it settles: its timer starts over.
        pending.arm(
            Path::new("/in/a"),
            stat(2),
            t0 + Duration::from_millis(1500) + s,
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.next_due(), Some(t0 + Duration::from_secs(3)));
        assert!(pending.take_due(t0 + s).is_empty());
        let due = pending.take_due(t0 + Duration::from_secs(3));
        assert_eq!(due, vec![(PathBuf::from("/in/b"), stat(1))]);
        let due = pending.take_due(t0 + Duration::from_secs(10));
        assert_eq!(due, vec![(PathBuf::from("/in/a"), stat(2))]);
        assert_eq!(pending.next_due(), None);
    }

    #[test]
    fn forgotten_files_never_come_due() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        pending.arm(Path::new("/in/a"), stat(1), t0);
        pending.arm(Path::new("/in/b"), stat(1), t0);
        pending.forget(Path::new("/in/a"));
        pending.forget(Path::new("/in/never"));
        let due = pending.take_due(t0);
        assert_eq!(due, vec![(PathBuf::from("/in/b"), stat(1))]);
        assert_eq!(pending.len(), 0);
    }
}

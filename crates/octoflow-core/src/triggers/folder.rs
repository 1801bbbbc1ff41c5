//! The file-system side of one folder watch, on a thread of its own: a `notify` watcher
//! reports changes, each changed file that matches waits to settle ([`Pending`]), and the
//! files that settled are handed to the async side ([`Found::Settled`]).
//!
//! At start the folder is listed once, after the watcher is set up so nothing falls between
//! the two: the files there wait to settle like changed ones, or, for a watch whose existing
//! files are skipped, are handed over as [`Found::Existing`]. A new subfolder of a recursive
//! watch is listed the same way (its files may have arrived before its own watch). Hidden
//! files and folders (names starting with `.`) and anything that is not a regular file
//! (symlinks among them) are left alone. Dropping the [`FolderWatch`] stops the thread.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::settle::{Pending, Stat};
use crate::flow::FilePattern;

/// What the thread hands to the async side.
#[derive(Debug, PartialEq)]
pub(super) enum Found {
    /// A file there at start, for a watch that skips existing files.
    Existing(PathBuf, Stat),
    /// The first listing is done.
    Listed,
    /// A file that stopped changing for `settle`.
    Settled(PathBuf, Stat),
}

/// What to do with the files found by the first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstListing {
    /// Let them settle and run, like changed files.
    Settle,
    /// Hand them over as [`Found::Existing`].
    Report,
}

/// One folder's watch; dropping it stops watching.
pub(super) struct FolderWatch {
    _watcher: RecommendedWatcher,
}

/// What the folder watch looks for.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    /// The folder, as resolved (absolute, symlinks followed).
    pub(super) folder: PathBuf,
    /// The files that count.
    pub(super) pattern: FilePattern,
    /// Whether subfolders count.
    pub(super) recursive: bool,
    /// How long a file must stay unchanged.
    pub(super) settle: Duration,
}

enum Msg {
    Paths(Vec<PathBuf>),
    Rescan,
}

/// Starts watching `spec.folder` (which must exist) and listing it. Blocks while the
/// watcher is set up: call it off the async runtime.
pub(super) fn start(
    spec: Spec,
    first: FirstListing,
    out: UnboundedSender<Found>,
) -> Result<FolderWatch, notify::Error> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let msg = match event {
            Ok(event) if event.need_rescan() => Msg::Rescan,
            Ok(event) if matters(&event) => Msg::Paths(event.paths),
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(error = %error, "Watching a folder failed; listing it again.");
                Msg::Rescan
            }
        };
        // The thread is gone only when the watch is being dropped.
        tx.send(msg).ok();
    })?;
    let mode = if spec.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher.watch(&spec.folder, mode)?;
    std::thread::Builder::new()
        .name("octoflow-watch".to_owned())
        .spawn(move || {
            let mut thread = Thread {
                spec,
                out,
                pending: Pending::default(),
            };
            thread.run(&rx, first);
        })
        .map_err(notify::Error::io)?;
    Ok(FolderWatch { _watcher: watcher })
}

/// Whether an event may mean a file changed: opening and reading do not.
fn matters(event: &Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

struct Thread {
    spec: Spec,
    out: UnboundedSender<Found>,
    pending: Pending,
}

impl Thread {
    fn run(&mut self, events: &Receiver<Msg>, first: FirstListing) {
        let now = Instant::now();
        for (path, stat) in self.list(&self.spec.folder.clone()) {
            match first {
                FirstListing::Settle => self.pending.arm(&path, stat, now + self.spec.settle),
                FirstListing::Report => {
                    if self.out.send(Found::Existing(path, stat)).is_err() {
                        return;
                    }
                }
            }
        }
        if self.out.send(Found::Listed).is_err() {
            return;
        }
        loop {
            let msg = match self.pending.next_due() {
                Some(due) => events.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Paths(paths)) => {
                    for path in paths {
                        self.changed(&path);
                    }
                }
                Ok(Msg::Rescan) => {
                    let folder = self.spec.folder.clone();
                    self.list_into_pending(&folder, Instant::now());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if !self.settle_due() {
                return;
            }
        }
    }

    /// A path changed: a matching file (re)starts its timer; a new subfolder of a recursive
    /// watch is listed, now and once more when its timer is due (the watcher starts
    /// watching a new folder only after telling of it, so a file written into it meanwhile
    /// has no event of its own); a file that is gone stops waiting.
    fn changed(&mut self, path: &Path) {
        let Some(relative) = self.relative(path) else {
            return;
        };
        let now = Instant::now();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {
                if self.spec.pattern.matches(&relative) {
                    self.pending
                        .arm(path, Stat::of(&meta), now + self.spec.settle);
                }
            }
            Ok(meta) if meta.is_dir() && self.spec.recursive => {
                self.list_into_pending(path, now);
                self.pending
                    .arm(path, Stat::of(&meta), now + self.spec.settle);
            }
            Ok(_) => {}
            Err(_) => self.pending.forget(path),
        }
    }

    /// Arms the timer of every matching file in `dir` (and below it).
    fn list_into_pending(&mut self, dir: &Path, now: Instant) {
        for (file, stat) in self.list(dir) {
            self.pending.arm(&file, stat, now + self.spec.settle);
        }
    }

    /// Looks once more at the files whose timers are due; `false` when the async side is
    /// gone.
    fn settle_due(&mut self) -> bool {
        let now = Instant::now();
        for (path, armed) in self.pending.take_due(now) {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                // A new subfolder's second look (see `changed`).
                self.list_into_pending(&path, now);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let stat = Stat::of(&meta);
            if stat == armed {
                if self.out.send(Found::Settled(path, stat)).is_err() {
                    return false;
                }
            } else {
                // Changed without an event reaching us (yet): wait again.
                self.pending.arm(&path, stat, now + self.spec.settle);
            }
        }
        true
    }

    /// The path below the folder, when the watch looks at it: inside the folder, not hidden,
    /// and directly in it unless the watch is recursive.
    fn relative(&self, path: &Path) -> Option<PathBuf> {
        let relative = path.strip_prefix(&self.spec.folder).ok()?;
        let mut depth = 0;
        for part in relative.components() {
            let Component::Normal(name) = part else {
                return None;
            };
            if hidden(name) {
                return None;
            }
            depth += 1;
        }
        (depth == 1 || (depth > 1 && self.spec.recursive)).then(|| relative.to_path_buf())
    }

    /// The matching files in `dir` (and below it, for a recursive watch).
    fn list(&self, dir: &Path) -> Vec<(PathBuf, Stat)> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            if let Err(error) = self.list_one(&dir, &mut out, &mut dirs) {
                tracing::warn!(dir = %dir.display(), error = %error, "Cannot list a watched folder.");
            }
        }
        out
    }

    fn list_one(
        &self,
        dir: &Path,
        out: &mut Vec<(PathBuf, Stat)>,
        dirs: &mut Vec<PathBuf>,
    ) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(relative) = self.relative(&path) else {
                continue;
            };
            let kind = entry.file_type()?;
            if kind.is_dir() && self.spec.recursive {
                dirs.push(path);
            } else if kind.is_file() && self.spec.pattern.matches(&relative) {
                match entry.metadata() {
                    Ok(meta) => out.push((path, Stat::of(&meta))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

fn hidden(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

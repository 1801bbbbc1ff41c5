//! Keeping a [`FlowLibrary`] in step with its directory.
//!
//! notify's thread only forwards a wake-up for each event that may change a flow file; a
//! thread of the library's own coalesces bursts (an editor's truncate-then-write, a `git
//! checkout`) for at most [`AT_MOST`], then reads the directory again. Reloading never runs
//! on the async runtime.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::FlowLibrary;

/// A burst of events ends after this long without one.
const QUIET: Duration = Duration::from_millis(50);
/// The longest a reload waits for a burst to end.
const AT_MOST: Duration = Duration::from_millis(200);

/// Keeps a [`FlowLibrary`] in step with its directory; dropping it stops watching.
#[must_use = "dropping the guard stops watching"]
pub struct LibraryWatch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for LibraryWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryWatch").finish_non_exhaustive()
    }
}

impl FlowLibrary {
    /// Starts watching the directory: files added, changed, renamed and removed are applied
    /// within a second, on a thread of the library's own. Dropping the guard stops watching.
    pub fn watch(self: &Arc<Self>) -> Result<LibraryWatch, notify::Error> {
        let (wake, woken) = mpsc::channel();
        let catch_up = wake.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let wanted = match &event {
                Ok(event) => matters(event),
                Err(error) => {
                    tracing::warn!(error = %error, "Watching the flows directory failed.");
                    true
                }
            };
            if wanted {
                // The reload thread is gone only when the library is: nothing to do.
                wake.send(()).ok();
            }
        })?;
        watcher.watch(&self.dir, RecursiveMode::Recursive)?;
        let library = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("octoflow-flows".to_owned())
            .spawn(move || reload_loop(&woken, &library))
            .map_err(notify::Error::io)?;
        // What changed between `open` and now was not seen by the watcher.
        catch_up.send(()).ok();
        Ok(LibraryWatch { _watcher: watcher })
    }
}

/// Reloads after each burst of events, until the watcher or the library is dropped.
fn reload_loop(woken: &Receiver<()>, library: &Weak<FlowLibrary>) {
    while woken.recv().is_ok() {
        if !settle(woken) {
            return;
        }
        let Some(library) = library.upgrade() else {
            return;
        };
        if let Err(error) = library.reload() {
            tracing::warn!(dir = %library.dir.display(), error = %error, "Cannot reload the flows directory.");
        }
    }
}

/// Waits for a burst of events to end (at most [`AT_MOST`]); `false` when watching stopped.
fn settle(woken: &Receiver<()>) -> bool {
    let deadline = Instant::now() + AT_MOST;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match woken.recv_timeout(QUIET.min(left)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// Whether an event may change a flow file. Opening and reading files (the reload's own
/// reads among them) and metadata changes do not; nor do hidden files (`write_atomic`'s
/// temporary file, an editor's swap file).
fn matters(event: &Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return false,
        _ => {}
    }
    event.need_rescan() || event.paths.is_empty() || event.paths.iter().any(|p| !hidden(p))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn only_events_that_may_change_a_flow_matter() {
        let create = EventKind::Create(CreateKind::File);
        assert!(matters(&event(create, "/f/a.yml")));
        assert!(matters(&event(create, "/f/sub")));
        assert!(!matters(&event(create, "/f/.octoflow-x1")));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(matters(&event(write, "/f/a.yml")));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let both = event(rename, "/f/.octoflow-x1").add_path("/f/a.yml".into());
        assert!(matters(&both));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(matters(&event(closed, "/f/a.yml")));
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!matters(&event(opened, "/f/a.yml")));
        let attrib = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        assert!(!matters(&event(attrib, "/f/a.yml")));
    }
}

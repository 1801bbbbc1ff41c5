//! The flows directory as a live set of flows (SPEC §3: `flows/` is watched and hot-reloaded).
//!
//! [`FlowLibrary::open`] loads every flow file under the directory ([`flow_files`]);
//! [`FlowLibrary::watch`] keeps the set in step with the directory as files are added,
//! changed, renamed and removed; [`FlowLibrary::put`] and [`FlowLibrary::remove`] change it
//! through the API (SPEC §11.2).
//!
//! Each file is one [`FlowEntry`]: its current text, the problems of that text, and the last
//! version that validated, which stays in use while the file is broken. Two files declaring
//! the same name: the first by path wins, the other shows a problem. Every change of the set
//! bumps the counter of [`FlowLibrary::subscribe`].

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::engine::FlowCatalog;
use crate::flow::{Flow, FlowLoader, Problem, Problems, SourceMap, is_valid_flow_name};
use crate::fs::FilesRoot;
use crate::step::Registry;

mod reload;
mod watch;

pub use watch::LibraryWatch;

/// Largest flow file read, as in the loader, so a hostile file cannot exhaust memory.
const MAX_FLOW_BYTES: u64 = 4 * 1024 * 1024;

/// Whether a path is a flow file's: `*.yml` or `*.yaml`, not hidden.
pub fn is_flow_file(path: &Path) -> bool {
    !is_hidden(path) && path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// Whether a path's last component starts with a dot.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.starts_with('.'))
}

/// The flow files in `dir` and its subdirectories (hidden files and directories skipped),
/// sorted by path.
pub fn flow_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let unreadable = |dir: &Path, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot read directory `{}`: {e}", dir.display()),
        )
    };
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| unreadable(&dir, e))? {
            let path = entry.map_err(|e| unreadable(&dir, e))?.path();
            if path.is_dir() && !is_hidden(&path) {
                pending.push(path);
            } else if path.is_file() && is_flow_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The flows of a directory, kept current. Shared as `Arc<FlowLibrary>`.
pub struct FlowLibrary {
    dir: PathBuf,
    registry: Arc<Registry>,
    templates_dir: PathBuf,
    files: FilesRoot,
    /// Held by whatever changes the set (a reload, `put`, `remove`), so a reload never
    /// undoes a write made meanwhile. Readers take only `state`.
    writer: Mutex<()>,
    state: Mutex<State>,
    changes: tokio::sync::watch::Sender<u64>,
}

/// One flow file of the library.
#[derive(Debug, Clone)]
pub struct FlowEntry {
    /// The flow's name: its `name:`, else its file stem.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The file's current text.
    pub source: Arc<str>,
    /// The last version that validated; kept when the file breaks.
    pub flow: Option<Arc<Flow>>,
    /// What is wrong with the current text; empty when it validates.
    pub problems: Vec<Problem>,
}

/// Why [`FlowLibrary::put`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The text is not a valid flow of that name.
    #[error("{0}")]
    Invalid(Problems),
    /// The file could not be written.
    #[error("cannot write flow file `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

#[derive(Default)]
struct State {
    /// Every flow file by path, as loaded (without the duplicate-name problems).
    files: BTreeMap<PathBuf, FlowEntry>,
    /// The entries as shown, sorted by name then path.
    entries: Vec<FlowEntry>,
    /// Index in `entries` of each name's entry: the first file by path.
    by_name: HashMap<String, usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FlowLibrary {
    /// Loads every `*.yml` / `*.yaml` file under `dir` (recursively, hidden files and
    /// directories skipped). A missing directory is created. Reads files: call it off the
    /// async runtime, or at startup.
    pub fn open(
        dir: PathBuf,
        registry: Arc<Registry>,
        templates_dir: PathBuf,
        files: FilesRoot,
    ) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        let library = Self {
            dir,
            registry,
            templates_dir,
            files,
            writer: Mutex::new(()),
            state: Mutex::new(State::default()),
            changes: tokio::sync::watch::channel(0).0,
        };
        library.reload()?;
        Ok(Arc::new(library))
    }

    /// The flows directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, sorted by name (then path, when two files declare the same name).
    pub fn entries(&self) -> Vec<FlowEntry> {
        lock(&self.state).entries.clone()
    }

    /// The entry of a flow name: the first file by path that declares it.
    pub fn entry(&self, name: &str) -> Option<FlowEntry> {
        let state = lock(&self.state);
        state.by_name.get(name).map(|&i| state.entries[i].clone())
    }

    /// The last good version of a flow.
    pub fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.entry(name).and_then(|e| e.flow)
    }

    /// Validates YAML text as the flow `name`; the name inside, if any, must equal `name`.
    /// Nothing is written; checking may read templates, so call it off the async runtime.
    pub fn check(&self, name: &str, text: &str) -> Result<Flow, Problems> {
        let path = self.target_path(&lock(&self.state), name);
        self.check_at(name, text, &path)
    }

    /// Validates `text` as the flow `name`, then writes it atomically to the flow's file, or
    /// to `<dir>/<name>.yml` for a new flow. The entry is updated at once, without waiting
    /// for the watcher. Writes and syncs a file: call it off the async runtime.
    pub fn put(&self, name: &str, text: &str) -> Result<Arc<Flow>, PutError> {
        let _writer = lock(&self.writer);
        let path = self.target_path(&lock(&self.state), name);
        let flow = self
            .check_at(name, text, &path)
            .map_err(PutError::Invalid)?;
        crate::fs::write_atomic(&path, text.as_bytes()).map_err(|source| PutError::Io {
            path: path.clone(),
            source,
        })?;
        let flow = Arc::new(flow);
        let entry = FlowEntry {
            name: name.to_owned(),
            path: path.clone(),
            source: flow.source.clone(),
            flow: Some(flow.clone()),
            problems: Vec::new(),
        };
        let mut state = lock(&self.state);
        state.files.insert(path, entry);
        state.rebuild(&self.dir);
        drop(state);
        tracing::info!(flow = %name, "Flow saved.");
        self.bump();
        Ok(flow)
    }

    /// Removes the flow's file and its entry; `false` when no flow has that name. Another
    /// file declaring the same name then takes its place.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        let _writer = lock(&self.writer);
        let Some(path) = self.entry(name).map(|e| e.path) else {
            return Ok(false);
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut state = lock(&self.state);
        state.files.remove(&path);
        state.rebuild(&self.dir);
        drop(state);
        tracing::info!(flow = %name, "Flow removed.");
        self.bump();
        Ok(true)
    }

    /// A counter bumped on every change of the set: a file loaded, changed, broken or
    /// removed, through the API or on disk.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn loader(&self) -> FlowLoader<'_> {
        FlowLoader::new(&self.registry)
            .with_templates_dir(self.templates_dir.clone())
            .with_files(self.files.clone())
    }

    /// Where the flow `name` is written: its file, or a new `<name>.yml` (`<name>.yaml` when
    /// a file of that name holds another flow).
    fn target_path(&self, state: &State, name: &str) -> PathBuf {
        if let Some(&i) = state.by_name.get(name) {
            return state.entries[i].path.clone();
        }
        let short = self.dir.join(format!("{name}.yml"));
        let long = self.dir.join(format!("{name}.yaml"));
        if state.files.contains_key(&short) && !state.files.contains_key(&long) {
            long
        } else {
            short
        }
    }

    fn check_at(&self, name: &str, text: &str, path: &Path) -> Result<Flow, Problems> {
        let file = path.display().to_string();
        let fail = |problem: Problem| Problems {
            file: file.clone(),
            items: vec![problem],
        };
        if !is_valid_flow_name(name) {
            return Err(fail(Problem::at(
                "name",
                format!(
                    "invalid flow name `{name}`; use lowercase letters, digits, `_`, `.` and `-` (at most 64, starting with a letter or digit)"
                ),
            )));
        }
        if text.len() as u64 > MAX_FLOW_BYTES {
            return Err(fail(Problem::at(
                "",
                format!("flow file is larger than {MAX_FLOW_BYTES} bytes"),
            )));
        }
        let mut flow = self.loader().load_str(text, &file, Some(name))?;
        if flow.name != name {
            let problem = Problem::at(
                "name",
                format!("the flow is named `{}` but saved as `{name}`", flow.name),
            );
            return Err(fail(placed(problem, text)));
        }
        let owner = lock(&self.state)
            .files
            .get(path)
            .map(|e| e.name.clone())
            .filter(|owner| owner != name);
        if let Some(owner) = owner {
            let problem = Problem::at(
                "name",
                format!("the file `{file}` holds flow `{owner}`; rename one of them"),
            );
            return Err(fail(problem));
        }
        flow.path = Some(path.to_path_buf());
        Ok(flow)
    }

    /// The entry of a file, relative to the directory.
    fn entry_at(&self, relative: &Path) -> Option<FlowEntry> {
        let path = self.dir.join(relative);
        lock(&self.state)
            .entries
            .iter()
            .find(|e| e.path == path)
            .cloned()
    }
}

impl fmt::Debug for FlowLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLibrary")
            .field("dir", &self.dir)
            .field("flows", &lock(&self.state).entries.len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// Derives the entries from the files: the first file by path owns a name, later ones
    /// show a problem and offer no flow.
    fn rebuild(&mut self, dir: &Path) {
        let mut owners: HashMap<&str, &Path> = HashMap::new();
        let mut entries = Vec::with_capacity(self.files.len());
        for file in self.files.values() {
            let mut entry = file.clone();
            if let Some(owner) = owners.get(file.name.as_str()) {
                let problem = Problem::at(
                    "name",
                    format!(
                        "flow name `{}` is already used by `{}`",
                        file.name,
                        owner.strip_prefix(dir).unwrap_or(owner).display()
                    ),
                );
                entry.problems.push(placed(problem, &file.source));
                entry.flow = None;
            } else {
                owners.insert(&file.name, &file.path);
            }
            entries.push(entry);
        }
        entries.sort_by(|a, b| (&a.name, &a.path).cmp(&(&b.name, &b.path)));
        self.by_name = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| owners.get(e.name.as_str()) == Some(&e.path.as_path()))
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        self.entries = entries;
    }
}

/// A problem with its line and column filled in from `text`.
fn placed(mut problem: Problem, text: &str) -> Problem {
    if let Some(place) = SourceMap::build(text).value_place(&problem.path) {
        problem.line = Some(place.line);
        problem.column = Some(place.column);
    }
    problem
}

fn problems_text(entry: &FlowEntry) -> String {
    Problems {
        file: entry.path.display().to_string(),
        items: entry.problems.clone(),
    }
    .to_string()
}

#[async_trait]
impl FlowCatalog for FlowLibrary {
    async fn by_name(&self, name: &str) -> Result<Arc<Flow>, String> {
        match self.entry(name) {
            Some(FlowEntry {
                flow: Some(flow), ..
            }) => Ok(flow),
            Some(entry) => Err(format!(
                "flow `{name}` is not valid:\n{}",
                problems_text(&entry)
            )),
            None => Err(format!(
                "no flow named `{name}` in `{}`",
                self.dir.display()
            )),
        }
    }

    async fn by_path(&self, path: &str) -> Result<Arc<Flow>, String> {
        let relative = Path::new(path);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside || path.is_empty() {
            return Err(format!(
                "flow path `{path}` must be relative to the flows directory, without `..`"
            ));
        }
        match self.entry_at(relative) {
            Some(FlowEntry {
                flow: Some(flow), ..
            }) => Ok(flow),
            Some(entry) => Err(format!(
                "flow file `{path}` is not valid:\n{}",
                problems_text(&entry)
            )),
            None => Err(format!("no flow file `{path}` in `{}`", self.dir.display())),
        }
    }
}

//! Reading the flows directory into the library: every file listed, the changed ones checked.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{FlowEntry, FlowLibrary, MAX_FLOW_BYTES, flow_files, lock};
use crate::flow::Problem;

/// One change found by a reload: a file loaded anew, or removed.
enum Update {
    Loaded { entry: FlowEntry, new: bool },
    Removed(PathBuf),
}

impl FlowLibrary {
    /// Reads the directory again and applies what changed; `Ok(true)` when something did.
    pub(crate) fn reload(&self) -> io::Result<bool> {
        let _writer = lock(&self.writer);
        let paths = flow_files(&self.dir)?;
        let old = lock(&self.state).files.clone();
        let mut updates = Vec::new();
        for path in &paths {
            let previous = old.get(path);
            let text = match read_flow_file(path) {
                Ok(text) => text,
                // Gone since the listing: the next event removes it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let entry = FlowEntry {
                        name: previous.map_or_else(|| stem(path), |p| p.name.clone()),
                        path: path.clone(),
                        source: Arc::from(""),
                        flow: previous.and_then(|p| p.flow.clone()),
                        problems: vec![Problem::at("", format!("cannot read flow file: {e}"))],
                    };
                    let same = previous
                        .is_some_and(|p| p.source.is_empty() && p.problems == entry.problems);
                    if !same {
                        let new = previous.is_none();
                        updates.push(Update::Loaded { entry, new });
                    }
                    continue;
                }
            };
            if previous.is_some_and(|p| *p.source == *text) {
                continue;
            }
            let entry = self.load(path, &text, previous);
            updates.push(Update::Loaded {
                entry,
                new: previous.is_none(),
            });
        }
        for (path, entry) in &old {
            if paths.binary_search(path).is_err() {
                tracing::info!(flow = %entry.name, "Flow removed.");
                updates.push(Update::Removed(path.clone()));
            }
        }
        if updates.is_empty() {
            return Ok(false);
        }
        let mut state = lock(&self.state);
        for update in updates {
            match update {
                Update::Loaded { entry, new } => {
                    log_loaded(&entry, new);
                    state.files.insert(entry.path.clone(), entry);
                }
                Update::Removed(path) => {
                    state.files.remove(&path);
                }
            }
        }
        state.rebuild(&self.dir);
        drop(state);
        self.bump();
        Ok(true)
    }

    /// Checks one file's text. A broken file keeps the last good flow of the same name.
    fn load(&self, path: &Path, text: &str, previous: Option<&FlowEntry>) -> FlowEntry {
        let file = path.display().to_string();
        let file_stem = path.file_stem().and_then(OsStr::to_str);
        match self.loader().load_str(text, &file, file_stem) {
            Ok(mut flow) => {
                flow.path = Some(path.to_path_buf());
                let flow = Arc::new(flow);
                FlowEntry {
                    name: flow.name.clone(),
                    path: path.to_path_buf(),
                    source: flow.source.clone(),
                    flow: Some(flow),
                    problems: Vec::new(),
                }
            }
            Err(problems) => {
                let last_good = previous.and_then(|p| p.flow.clone());
                // The name it declares; when the YAML cannot be read, the name it had.
                let name = match crate::yaml::from_str::<Value>(text) {
                    Ok(doc) => doc.get("name").and_then(Value::as_str).map(str::to_owned),
                    Err(_) => last_good.as_ref().map(|f| f.name.clone()),
                }
                .unwrap_or_else(|| stem(path));
                FlowEntry {
                    flow: last_good.filter(|f| f.name == name),
                    name,
                    path: path.to_path_buf(),
                    source: Arc::from(text),
                    problems: problems.items,
                }
            }
        }
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or_default()
        .to_owned()
}

fn read_flow_file(path: &Path) -> io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FLOW_BYTES {
        return Err(io::Error::other(format!(
            "flow file is larger than {MAX_FLOW_BYTES} bytes"
        )));
    }
    std::fs::read_to_string(path)
}

fn log_loaded(entry: &FlowEntry, new: bool) {
    let name = &entry.name;
    if entry.problems.is_empty() {
        if new {
            tracing::info!(flow = %name, "Flow loaded.");
        } else {
            tracing::info!(flow = %name, "Flow reloaded.");
        }
    } else {
        let problems = entry.problems.len();
        let kept = entry.flow.is_some();
        tracing::warn!(flow = %name, problems, last_good_kept = kept, path = %entry.path.display(), "Flow has problems.");
    }
}

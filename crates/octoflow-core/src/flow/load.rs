//! Reading flow files: YAML text → parsed document + source map → checked [`Flow`].

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest;

use super::check::check_document;
use super::model::Flow;
use super::problem::{Problem, Problems};
use super::source_map::SourceMap;
use crate::fs::FilesRoot;
use crate::step::{CheckCx, Registry};

/// Largest flow file read, so a hostile document cannot exhaust memory.
const MAX_FLOW_BYTES: u64 = 4 * 1024 * 1024;

/// Loads flows against a registry of step kinds.
#[derive(Debug, Clone)]
pub struct FlowLoader<'a> {
    registry: &'a Registry,
    templates_dir: Option<PathBuf>,
    files: Option<FilesRoot>,
}

/// The version of a flow: a short hash of its source text.
pub fn flow_version(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    hex::encode(digest).chars().take(16).collect()
}

impl<'a> FlowLoader<'a> {
    /// A loader that knows the kinds in `registry`.
    pub fn new(registry: &'a Registry) -> Self {
        Self {
            registry,
            templates_dir: None,
            files: None,
        }
    }

    /// Checks `jinja` template paths against this directory.
    #[must_use]
    pub fn with_templates_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates_dir = Some(dir.into());
        self
    }

    /// Checks literal file paths against these roots.
    #[must_use]
    pub fn with_files(mut self, files: FilesRoot) -> Self {
        self.files = Some(files);
        self
    }

    /// Reads and checks a flow file; the flow's name defaults to the file stem.
    pub fn load_file(&self, path: &Path) -> Result<Flow, Problems> {
        let file = path.display().to_string();
        let fail = |message: String| Problems {
            file: file.clone(),
            items: vec![Problem::at("", message)],
        };
        let meta =
            std::fs::metadata(path).map_err(|e| fail(format!("cannot read flow file: {e}")))?;
        if meta.len() > MAX_FLOW_BYTES {
            return Err(fail(format!(
                "flow file is larger than {MAX_FLOW_BYTES} bytes"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read flow file: {e}")))?;
        let stem = path.file_stem().and_then(|s| s.to_str());
        let mut flow = self.load_str(&text, &file, stem)?;
        flow.path = Some(path.to_path_buf());
        Ok(flow)
    }

    /// Checks a flow given as text. `file` names it in problems; `stem` is the default name.
    pub fn load_str(&self, text: &str, file: &str, stem: Option<&str>) -> Result<Flow, Problems> {
        let problems = |items| Problems {
            file: file.to_owned(),
            items,
        };
        let doc = parse_yaml(text).map_err(|p| problems(vec![p]))?;
        let map = SourceMap::build(text);
        let cx = CheckCx {
            templates_dir: self.templates_dir.as_deref(),
            files: self.files.as_ref(),
            registry: Some(self.registry),
        };
        check_document(doc, text, stem, self.registry, &cx).map_err(|mut items| {
            for p in &mut items {
                let place = if p.message.starts_with("unknown field") {
                    map.key_place(&p.path)
                } else {
                    map.value_place(&p.path)
                };
                if let Some(place) = place {
                    p.line.get_or_insert(place.line);
                    p.column.get_or_insert(place.column);
                }
            }
            items.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
            problems(items)
        })
    }
}

/// Parses YAML into JSON; a syntax error becomes one problem with its place.
fn parse_yaml(text: &str) -> Result<Value, Problem> {
    crate::yaml::from_str::<Value>(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| {
                (
                    usize::try_from(l.line()).ok(),
                    usize::try_from(l.column()).ok(),
                )
            })
            .unwrap_or_default();
        let message = err.to_string();
        let first = message.lines().next().unwrap_or("invalid YAML").trim();
        let first = first.split(" at line ").next().unwrap_or(first);
        let first = strip_place_prefix(first);
        Problem {
            path: String::new(),
            line,
            column,
            message: format!("invalid YAML: {first}"),
        }
    })
}

/// Drops a leading `error: line N column M: ` (the place is reported separately).
fn strip_place_prefix(message: &str) -> &str {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((place, tail)) if place.contains(" column ") => tail,
        _ => rest,
    }
}

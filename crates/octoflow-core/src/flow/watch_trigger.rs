//! The folder-watch and flow-chaining triggers as declared in a flow (SPEC §7), with their
//! checks and the file-name patterns of watches. Firing them belongs to
//! [`crate::triggers`].

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Dur, format_duration, is_valid_flow_name};
use crate::store::RunStatus;

/// How long a watched file must stay unchanged when the watch gives no `settle`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// A folder watch: `watch: {path, pattern, settle, recursive, existing}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchTrigger {
    /// The folder: relative to the data directory, or in `files.roots`.
    pub path: String,
    /// Glob of the files that start runs (default all): matched against the file name, or,
    /// when it holds a `/`, against the path below the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// How long a file must stay unchanged (size and modification time) before its run
    /// starts (default 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Dur>,
    /// Watch subfolders too.
    #[serde(default)]
    pub recursive: bool,
    /// What to do with the files already there the first time the watch starts.
    #[serde(default)]
    pub existing: WatchExisting,
}

/// What a watch does with the files already in its folder the first time it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchExisting {
    /// Each starts a run, once, like a new file.
    #[default]
    Process,
    /// They are recorded as seen without a run; only files that arrive or change later run.
    Skip,
}

/// The files a watch takes, from its `pattern`.
#[derive(Debug, Clone)]
pub struct FilePattern {
    glob: Option<globset::GlobMatcher>,
    by_path: bool,
}

impl FilePattern {
    /// Whether the file at `relative` (its path below the watched folder) matches.
    pub fn matches(&self, relative: &Path) -> bool {
        let Some(glob) = &self.glob else {
            return true;
        };
        if self.by_path {
            glob.is_match(relative)
        } else {
            relative.file_name().is_some_and(|name| glob.is_match(name))
        }
    }
}

impl WatchTrigger {
    /// How long a file must stay unchanged.
    pub fn settle(&self) -> Duration {
        self.settle.map_or(DEFAULT_SETTLE, Dur::get)
    }

    /// The compiled `pattern`.
    pub fn file_pattern(&self) -> Result<FilePattern, String> {
        let Some(pattern) = self.pattern.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(FilePattern {
                glob: None,
                by_path: false,
            });
        };
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
        Ok(FilePattern {
            glob: Some(glob.compile_matcher()),
            by_path: pattern.contains('/'),
        })
    }

    /// Checks the watch; messages are relative to the watch block. Whether the folder is
    /// allowed is checked with the flow (it needs the data directory).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.path.trim().is_empty() {
            problems.push(("path".to_owned(), "a watch needs a folder".to_owned()));
        }
        let pattern = self.pattern.as_deref().unwrap_or_default();
        if let Err(message) = self.file_pattern() {
            problems.push(("pattern".to_owned(), message));
        } else if pattern.starts_with('/') {
            problems.push((
                "pattern".to_owned(),
                format!("pattern `{pattern}` must be relative to the watched folder"),
            ));
        } else if pattern.contains('/') && !self.recursive {
            problems.push((
                "pattern".to_owned(),
                format!("pattern `{pattern}` matches files in subfolders; set `recursive: true`"),
            ));
        }
        if self.settle.is_some_and(|s| s.get().is_zero()) {
            problems.push((
                "settle".to_owned(),
                "must be more than 0 (how long a file must stay unchanged)".to_owned(),
            ));
        }
        problems
    }

    /// One line for people: `watch inbox for *.pdf (settle 5s, recursive)`.
    pub fn summary(&self) -> String {
        let mut options = vec![format!("settle {}", format_duration(self.settle()))];
        if self.recursive {
            options.push("recursive".to_owned());
        }
        if self.existing == WatchExisting::Skip {
            options.push("existing files skipped".to_owned());
        }
        let pattern = self.pattern.as_deref().unwrap_or("*");
        format!("watch {} for {pattern} ({})", self.path, options.join(", "))
    }
}

/// Runs after another flow's run ends: `flow: {name, status}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowTrigger {
    /// The upstream flow.
    pub name: String,
    /// The statuses that start this flow (default `[succeeded]`).
    #[serde(default = "default_statuses")]
    pub status: Vec<RunStatus>,
}

fn default_statuses() -> Vec<RunStatus> {
    vec![RunStatus::Succeeded]
}

impl FlowTrigger {
    /// Checks the upstream name and statuses; messages are relative to the flow block.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !is_valid_flow_name(&self.name) {
            problems.push((
                "name".to_owned(),
                format!("invalid flow name `{}`", self.name),
            ));
        }
        if self.status.is_empty() {
            problems.push((
                "status".to_owned(),
                "give at least one status: succeeded, failed, cancelled or timed_out".to_owned(),
            ));
        }
        for (i, status) in self.status.iter().enumerate() {
            if !status.is_final() {
                problems.push((
                    format!("status[{i}]"),
                    format!(
                        "`{status}` is not how a run ends; use succeeded, failed, cancelled or timed_out"
                    ),
                ));
            }
        }
        problems
    }

    /// One line for people: `after ingest succeeded or failed`.
    pub fn summary(&self) -> String {
        let statuses: Vec<&str> = self.status.iter().map(|s| s.as_str()).collect();
        format!("after {} {}", self.name, statuses.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(pattern: Option<&str>, recursive: bool) -> WatchTrigger {
        WatchTrigger {
            path: "inbox".to_owned(),
            pattern: pattern.map(str::to_owned),
            settle: None,
            recursive,
            existing: WatchExisting::Process,
        }
    }

    #[test]
    fn patterns_match_names_or_paths_below_the_folder() {
        let names = watch(Some("*.pdf"), true).file_pattern().unwrap();
        assert!(names.matches(Path::new("a.pdf")));
        assert!(names.matches(Path::new("sub/deeper/a.pdf")));
        assert!(!names.matches(Path::new("a.pdf.part")));
        let paths = watch(Some("in/*.csv"), true).file_pattern().unwrap();
        assert!(paths.matches(Path::new("in/a.csv")));
        assert!(!paths.matches(Path::new("in/x/a.csv")));
        assert!(!paths.matches(Path::new("a.csv")));
        let deep = watch(Some("**/*.csv"), true).file_pattern().unwrap();
        assert!(deep.matches(Path::new("a/b/c.csv")));
        let all = watch(None, false).file_pattern().unwrap();
        assert!(all.matches(Path::new("anything")));
        let set = watch(Some("*.{pdf,PDF}"), false).file_pattern().unwrap();
        assert!(set.matches(Path::new("x.PDF")));
    }

    #[test]
    fn checks_name_each_wrong_field() {
        assert!(watch(Some("*.pdf"), false).check().is_empty());
        let fields = |w: &WatchTrigger| w.check().into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(fields(&watch(Some("[a"), false)), ["pattern"]);
        assert_eq!(fields(&watch(Some("sub/*.pdf"), false)), ["pattern"]);
        assert_eq!(fields(&watch(Some("/abs/*.pdf"), true)), ["pattern"]);
        let mut w = watch(None, false);
        w.path = " ".to_owned();
        w.settle = Some(Dur(Duration::ZERO));
        assert_eq!(fields(&w), ["path", "settle"]);

        let flow = |name: &str, status: Vec<RunStatus>| FlowTrigger {
            name: name.to_owned(),
            status,
        };
        assert!(flow("ingest", default_statuses()).check().is_empty());
        assert_eq!(flow("Bad Name", default_statuses()).check()[0].0, "name");
        assert_eq!(flow("ingest", Vec::new()).check()[0].0, "status");
        assert_eq!(
            flow("ingest", vec![RunStatus::Failed, RunStatus::Running]).check()[0].0,
            "status[1]"
        );
    }

    #[test]
    fn summaries_read_as_sentences() {
        let mut w = watch(Some("*.pdf"), true);
        w.existing = WatchExisting::Skip;
        assert_eq!(
            w.summary(),
            "watch inbox for *.pdf (settle 2s, recursive, existing files skipped)"
        );
        let f = FlowTrigger {
            name: "ingest".to_owned(),
            status: vec![RunStatus::Succeeded, RunStatus::Failed],
        };
        assert_eq!(f.summary(), "after ingest succeeded or failed");
    }
}

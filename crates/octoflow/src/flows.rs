//! Finding flow files: the step-kind table, the files of a directory, and a flow named on
//! the command line (a path, or a name in the flows directory).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use octoflow_core::flow::{FlowLoader, is_valid_flow_name};
use octoflow_core::fs::FilesRoot;
// `flow_files` lives in core (the server watches the same files); the commands use it from here.
pub(crate) use octoflow_core::library::flow_files;
use octoflow_core::library::is_flow_file;
use octoflow_core::step::Registry;
use serde::Deserialize;

use crate::config::Config;

/// Every step kind this binary knows: the engine's own (`flow`, `switch`, …), the built-in
/// leaf kinds with the HTTP client of `rest` steps made from the config, `sql` with the
/// config's connections and `publish` with its sinks (clients, connections and sinks are
/// all opened at first use).
pub(crate) fn registry(config: &Config) -> Registry {
    let mut registry = Registry::with_core_kinds();
    let mut steps = config.http.steps_config();
    steps.smtp = config
        .smtp
        .iter()
        .map(|(name, server)| {
            let server = octoflow_steps::SmtpServer::new(server.url.clone(), server.from.clone());
            (name.clone(), server)
        })
        .collect();
    octoflow_steps::register_builtin_with(&mut registry, &steps);
    registry.register(octoflow_sql::Sql::new(octoflow_sql::Connections::new(
        config.connections.clone(),
    )));
    let http = steps.http.clone();
    registry.register(octoflow_publish::Publish::new(
        config.sinks.clone(),
        move || http.client(),
    ));
    registry
}

/// A loader that checks `jinja` templates and literal file paths against the config.
/// `files` is `None` when the data directory does not exist (its paths cannot be checked).
pub(crate) fn loader<'a>(
    registry: &'a Registry,
    config: &Config,
    files: Option<FilesRoot>,
) -> FlowLoader<'a> {
    let loader = FlowLoader::new(registry).with_templates_dir(&config.templates_dir);
    match files {
        Some(files) => loader.with_files(files),
        None => loader,
    }
}

/// Whether a FLOW argument names a file rather than a flow.
pub(crate) fn looks_like_path(arg: &str) -> bool {
    arg.contains(std::path::MAIN_SEPARATOR)
        || arg.contains('/')
        || is_flow_file(Path::new(arg))
        || Path::new(arg).is_file()
}

/// The file of the flow named on the command line: a path as it is, or a name looked up in
/// the flows directory (by file stem, then by `name:`).
pub(crate) fn resolve(arg: &str, flows_dir: &Path) -> Result<PathBuf> {
    if looks_like_path(arg) {
        let path = PathBuf::from(arg);
        if path.is_file() {
            return Ok(path);
        }
        // A bare file name (`hello.yml`) may also be one in the flows directory.
        let in_flows = flows_dir.join(arg);
        if path.components().count() == 1 && in_flows.is_file() {
            return Ok(in_flows);
        }
        bail!("flow file `{arg}` does not exist");
    }
    if !is_valid_flow_name(arg) {
        bail!(
            "`{arg}` is neither a flow file nor a flow name (names match ^[a-z0-9][a-z0-9_.-]{{0,63}}$)"
        );
    }
    for ext in ["yml", "yaml"] {
        let path = flows_dir.join(format!("{arg}.{ext}"));
        if path.is_file() {
            return Ok(path);
        }
    }
    if !flows_dir.is_dir() {
        bail!(
            "flow `{arg}` not found: the flows directory `{}` does not exist (give a file path, or --data)",
            flows_dir.display()
        );
    }
    let known = flow_names(flows_dir)?;
    if let Some((_, path)) = known.iter().find(|(name, _)| name == arg) {
        return Ok(path.clone());
    }
    let mut close: Vec<(f64, &str)> = known
        .iter()
        .map(|(name, _)| (strsim::jaro_winkler(arg, name), name.as_str()))
        .filter(|(score, _)| *score > 0.7)
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hint = if !close.is_empty() {
        let names: Vec<String> = close
            .iter()
            .take(3)
            .map(|(_, n)| format!("`{n}`"))
            .collect();
        format!("; did you mean {}?", names.join(" or "))
    } else if known.is_empty() {
        "; it has no flow files".to_owned()
    } else {
        let names: Vec<&str> = known.iter().take(10).map(|(n, _)| n.as_str()).collect();
        let more = if known.len() > 10 { ", …" } else { "" };
        format!(" (it has: {}{more})", names.join(", "))
    };
    bail!("flow `{arg}` not found in `{}`{hint}", flows_dir.display())
}

/// Every flow's name in a directory: its `name:`, else its file stem. Files that cannot be
/// read or parsed count by their stem.
fn flow_names(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    #[derive(Deserialize)]
    struct NameOnly {
        name: Option<String>,
    }
    let mut names = Vec::new();
    for path in flow_files(dir)? {
        let declared = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| octoflow_core::yaml::from_str::<NameOnly>(&text).ok())
            .and_then(|doc| doc.name);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(ToOwned::to_owned);
        if let Some(name) = declared.or(stem) {
            names.push((name, path));
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn names_resolve_by_stem_then_by_name() {
        let dir = dir_with(&[
            ("hello.yml", "steps: []"),
            ("sub/other.yaml", "name: renamed\nsteps: []"),
            (".hidden.yml", ""),
            ("notes.txt", ""),
        ]);
        let flows = dir.path();
        assert_eq!(resolve("hello", flows).unwrap(), flows.join("hello.yml"));
        assert_eq!(
            resolve("renamed", flows).unwrap(),
            flows.join("sub/other.yaml")
        );
        let err = resolve("helo", flows).unwrap_err().to_string();
        assert!(err.ends_with("; did you mean `hello`?"), "{err}");
        let err = resolve("zzz", flows).unwrap_err().to_string();
        assert!(err.ends_with("(it has: hello, renamed)"), "{err}");
        assert_eq!(flow_files(flows).unwrap().len(), 2);
    }

    #[test]
    fn paths_are_taken_as_they_are() {
        let dir = dir_with(&[("a.yml", "steps: []")]);
        let path = dir.path().join("a.yml");
        assert_eq!(
            resolve(path.to_str().unwrap(), Path::new("nowhere")).unwrap(),
            path
        );
        let err = resolve("missing/b.yml", Path::new("nowhere"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "flow file `missing/b.yml` does not exist");
    }
}

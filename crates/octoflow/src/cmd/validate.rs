//! `octoflow validate [PATH…]`: checks flow files as `run` and the server would, and prints
//! every problem of every file as `file:line:column: path: message` on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use octoflow_core::flow::{Problem, SourceMap};
use octoflow_core::fs::FilesRoot;

use crate::cli::{GlobalArgs, ValidateArgs};
use crate::config::{Config, Env, Flags};
use crate::{flows, output};

/// Runs `octoflow validate`.
#[allow(clippy::print_stderr)] // the summary line
pub(crate) fn validate(global: &GlobalArgs, args: &ValidateArgs, env: Env) -> Result<ExitCode> {
    let flags = Flags {
        data_hint: args.paths.first().cloned(),
        ..super::global_flags(global)
    };
    let config = Config::load(&flags, env)?;
    let files = collect(&config, &args.paths)?;

    let registry = flows::registry(&config);
    // File paths in steps are checked only against a data directory that exists.
    let root = config.data_dir.is_dir().then(|| {
        FilesRoot::new(
            &config.data_dir,
            &config.files.roots,
            config.files.allow_absolute,
        )
        .ok()
    });
    let loader = flows::loader(&registry, &config, root.flatten());

    let mut out = String::new();
    let (mut problems, mut bad) = (0usize, 0usize);
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in &files {
        let lines: Vec<String> = match loader.load_file(file) {
            Ok(flow) => {
                if let Some(first) = names.get(&flow.name) {
                    vec![duplicate_name(file, &flow.name, first, &flow.source)]
                } else {
                    names.insert(flow.name.clone(), file.clone());
                    Vec::new()
                }
            }
            Err(found) => found.lines().collect(),
        };
        if !lines.is_empty() {
            bad += 1;
            problems += lines.len();
        }
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    output::stdout(&out)?;

    let n = files.len();
    if problems == 0 {
        eprintln!("{n} {} ok", plural(n, "flow", "flows"));
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{problems} {} in {bad} of {n} {}",
            plural(problems, "problem", "problems"),
            plural(n, "flow", "flows")
        );
        Ok(output::failure())
    }
}

/// The flow files named by the paths (files as they are, directories searched), or those
/// of the flows directory.
#[allow(clippy::print_stderr)] // a warning about an empty directory
fn collect(config: &Config, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() && !config.flows_dir.is_dir() {
        bail!(
            "the flows directory `{}` does not exist; give flow files or directories, or --data",
            config.flows_dir.display()
        );
    }
    let default = [config.flows_dir.clone()];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = flows::flow_files(path)?;
            if found.is_empty() {
                eprintln!("warning: no *.yml or *.yaml files in `{}`", path.display());
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("`{}` does not exist", path.display());
        }
    }
    Ok(files)
}

/// Flow names are unique: a second file with the same name is a problem at its `name:`.
fn duplicate_name(
    file: &std::path::Path,
    name: &str,
    first: &std::path::Path,
    source: &str,
) -> String {
    let mut problem = Problem::at(
        "name",
        format!(
            "flow name `{name}` is already used by `{}`",
            first.display()
        ),
    );
    if let Some(place) = SourceMap::build(source).value_place("name") {
        problem.line = Some(place.line);
        problem.column = Some(place.column);
    }
    problem.display_in(&file.display().to_string()).to_string()
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

//! `octoflow init [DIR]`: a data directory with a commented config, an empty secrets file
//! and example flows that run with nothing else installed. Existing files are never
//! replaced unless `--force` is given.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::{GlobalArgs, InitArgs};
use crate::config::{self, Env};
use crate::output;

/// One file `init` writes.
pub(crate) struct Asset {
    /// Where, relative to the data directory.
    pub(crate) path: &'static str,
    /// What it holds.
    pub(crate) text: &'static str,
    /// What it is, for the listing.
    pub(crate) about: &'static str,
    /// Whether only the owner may read it.
    pub(crate) private: bool,
}

/// Every file of a new data directory.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        path: "config.yml",
        text: include_str!("init/config.yml"),
        about: "settings, every key commented out",
        private: false,
    },
    Asset {
        path: "secrets.yml",
        text: include_str!("init/secrets.yml"),
        about: "secrets: none yet (only you may read it)",
        private: true,
    },
    Asset {
        path: "flows/hello.yml",
        text: include_str!("init/hello.yml"),
        about: "set_fact, exec, jq and file steps",
        private: false,
    },
    Asset {
        path: "flows/dag.yml",
        text: include_str!("init/dag.yml"),
        about: "steps side by side with depends and max_parallel",
        private: false,
    },
    Asset {
        path: "flows/greet.yml",
        text: include_str!("init/greet.yml"),
        about: "typed params, `when`, and a jinja template",
        private: false,
    },
    Asset {
        path: "templates/greeting.j2",
        text: include_str!("init/greeting.j2"),
        about: "the template greet.yml renders",
        private: false,
    },
];

/// Runs `octoflow init`.
pub(crate) fn init(global: &GlobalArgs, args: &InitArgs, env: &Env) -> Result<ExitCode> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => config::data_dir(global.data.as_deref(), env),
    };
    let existing: Vec<String> = ASSETS
        .iter()
        .map(|a| dir.join(a.path))
        .filter(|p| p.exists())
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if !existing.is_empty() && !args.force {
        bail!(
            "refusing to overwrite {}; pass --force to replace them",
            existing.join(", ")
        );
    }
    for asset in ASSETS {
        write_asset(&dir, asset)?;
    }
    output::stdout(&report(&dir))?;
    Ok(ExitCode::SUCCESS)
}

fn write_asset(dir: &Path, asset: &Asset) -> Result<()> {
    let path = dir.join(asset.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory `{}`", parent.display()))?;
    }
    let mode = if asset.private { 0o600 } else { 0o644 };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    if asset.private {
        // `mode` applies only to a new file; an old one given with --force is closed too.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict `{}` to its owner", path.display()))?;
    }
    file.write_all(asset.text.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// What was made, and what to type next.
fn report(dir: &Path) -> String {
    let shown = |rel: &str| quote(&dir.join(rel));
    let mut out = format!("Created the data directory {}:\n", quote(dir));
    let width = ASSETS
        .iter()
        .map(|a| shown(a.path).len())
        .max()
        .unwrap_or(0);
    for asset in ASSETS {
        let _ = writeln!(out, "  {:width$}  {}", shown(asset.path), asset.about);
    }
    let _ = write!(
        out,
        "\nNext steps:\n  octoflow run {hello}\n  octoflow run {greet} -p name=Ada -p tone=loud\n  \
         octoflow run {dag}\n  octoflow validate {flows}\n\n\
         A flow file in {flows} uses {dir} as its data directory (runs are recorded in {db}).\n",
        hello = shown("flows/hello.yml"),
        greet = shown("flows/greet.yml"),
        dag = shown("flows/dag.yml"),
        flows = shown(config::FLOWS_DIR_NAME),
        dir = quote(dir),
        db = shown("octoflow.db"),
    );
    out
}

/// A path as a shell word: as it is when it needs no quotes.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-+:@".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One example file by its path.
#[cfg(test)]
fn example(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote(Path::new("demo/flows")), "demo/flows");
        assert_eq!(quote(Path::new("my demo")), "'my demo'");
        assert_eq!(quote(Path::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn the_config_documents_only_real_keys() {
        // Uncommenting every setting must give a valid config file.
        let text = example("config.yml").unwrap().text;
        let uncommented: String = text
            .lines()
            .filter(|l| !l.starts_with("##"))
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, &uncommented).unwrap();
        let flags = config::Flags {
            config: Some(path),
            ..config::Flags::default()
        };
        let loaded = config::Config::load(&flags, Env::default());
        assert!(loaded.is_ok(), "{uncommented}\n{loaded:?}");
        let loaded = loaded.unwrap();
        assert_eq!(loaded.workers, 8);
        assert_eq!(loaded.tracker_dir, Some(PathBuf::from("data/trackers")));
    }
}

//! The command line, declared with clap's derive API. Parsing only: every value is checked
//! and turned into settings by [`crate::config`] and the commands in [`crate::cmd`].

#![allow(clippy::doc_markdown, rustdoc::invalid_html_tags)] // doc comments here are --help text, written for a terminal (`<data>` is a placeholder, not HTML)

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

const ABOUT: &str = "Runs YAML flows of steps and records every run";

const LONG_ABOUT: &str = "\
Runs flows: YAML files of ordered steps that move and transform data between files, \
commands, HTTP APIs and databases. Every run and each of its steps is recorded in the \
data directory's store (SQLite by default).";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 the run did not succeed, or `validate` found problems; \
2 a usage error (bad arguments, an invalid flow, a bad param) or an internal error.

Settings come from <data>/config.yml, overridden by OCTOFLOW_* environment variables, \
overridden by flags. Start with `octoflow init demo && octoflow run demo/flows/hello.yml`.";

const RUN_AFTER_HELP: &str = "\
FLOW is a path to a flow file (a bare file name is also looked for in the flows \
directory), or the name of a flow in the flows directory (<data>/flows/NAME.yml or .yaml, \
or a file there whose `name:` is NAME).

The data directory is --data, else OCTOFLOW_DATA_PATH, else — when FLOW is a file in a \
directory named `flows` that sits beside a `config.yml` — that directory's parent (so \
`octoflow init demo && octoflow run demo/flows/hello.yml` uses `demo`), else `./data`.

Progress goes to stderr: a live view on a terminal, one line per step otherwise. \
Ctrl-C (or SIGTERM) cancels the run gracefully: running steps are stopped and the run \
ends `cancelled`; a second Ctrl-C exits at once (the next start marks the run \
`interrupted`). Exit code 0 only when the run succeeded, 1 when it failed, was cancelled \
or timed out, 2 when it could not start.";

const VALIDATE_AFTER_HELP: &str = "\
Each problem is printed on stdout as `file:line:column: path: message`; a summary goes to \
stderr. Exit code 1 when any flow has a problem, 0 otherwise.

Without --data or OCTOFLOW_DATA_PATH, the data directory (used for `templates/` and file \
paths) is inferred from the first PATH when it is, or is in, a directory named `flows` \
beside a `config.yml`; else it is `./data`.";

/// `octoflow`: one binary that runs declarative YAML flows.
#[derive(Debug, Parser)]
#[command(
    name = "octoflow",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    max_term_width = 100,
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// The data directory: config.yml, secrets.yml, flows/, templates/, runs/ and the
    /// SQLite store octoflow.db. Missing folders are created [env: OCTOFLOW_DATA_PATH]
    /// [default: ./data]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub(crate) data: Option<PathBuf>,

    /// The config file; optional unless given here or in the environment
    /// [env: OCTOFLOW_CONFIG_FILE] [default: <data>/config.yml]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub(crate) config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one flow in this process and wait for it to end
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Check flow files and print every problem as `file:line:column: path: message`
    #[command(after_help = VALIDATE_AFTER_HELP)]
    Validate(ValidateArgs),
    /// Create a data directory with a config file and example flows that run as they are
    Init(InitArgs),
    /// Print a shell completion script to stdout
    Completions(CompletionsArgs),
}

/// `octoflow run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The flow: a path to a flow file, or the name of a flow in the flows directory
    #[arg(value_name = "FLOW")]
    pub(crate) flow: String,

    /// A param of the flow, read as its declared type (`-p batch=50 -p env=prd`); repeat
    /// for each param. A param the flow does not declare is an error
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// A JSON or YAML file whose content is the run's input (`data.__input__`; the keys of
    /// a mapping also become `data` keys). `-` reads stdin
    #[arg(long, value_name = "FILE")]
    pub(crate) data_file: Option<PathBuf>,

    /// Render every step's settings against the params and show which steps `when` would
    /// skip; nothing runs and nothing is recorded
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Print the final run record, with its step runs as `steps`, as JSON on stdout (with
    /// --dry-run: the dry run as JSON). Nothing else is printed on stdout
    #[arg(long)]
    pub(crate) json: bool,

    /// Print no progress on stderr (errors are still printed)
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// The store: `sqlite://PATH` (a relative PATH is relative to the current directory)
    /// [env: OCTOFLOW_DATABASE_URL] [default: sqlite://<data>/octoflow.db]
    #[arg(long, value_name = "URL")]
    pub(crate) database: Option<String>,
}

/// `octoflow validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Flow files, or directories whose *.yml and *.yaml files (searched recursively) are
    /// flows [default: the flows directory, <data>/flows]
    #[arg(value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
}

/// `octoflow init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The data directory to create [default: --data, OCTOFLOW_DATA_PATH or ./data]
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Replace files that already exist (by default nothing is overwritten)
    #[arg(long)]
    pub(crate) force: bool,
}

/// `octoflow completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write completions for
    #[arg(value_name = "SHELL")]
    pub(crate) shell: Shell,
}

/// Splits `key=value` at the first `=`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[track_caller]
    fn case(text: &str, expected: Result<(&str, &str), ()>) {
        let got = parse_param(text);
        match expected {
            Ok((k, v)) => assert_eq!(got, Ok((k.to_owned(), v.to_owned()))),
            Err(()) => assert!(got.is_err(), "{text:?} should be refused, got {got:?}"),
        }
    }

    #[test]
    fn params_split_at_the_first_equals_sign() {
        case("env=prd", Ok(("env", "prd")));
        case("query=a=b", Ok(("query", "a=b")));
        case("empty=", Ok(("empty", "")));
        case(" key =x", Ok(("key", "x")));
        case("novalue", Err(()));
        case("=x", Err(()));
    }
}

//! The command line, declared with clap's derive API. Parsing only: every value is checked
//! and turned into settings by [`crate::config`] and the commands in [`crate::cmd`].

#![allow(clippy::doc_markdown, rustdoc::invalid_html_tags)] // doc comments here are --help text, written for a terminal (`<data>` is a placeholder, not HTML)

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use octoflow_core::store::{Role, RunStatus};

mod remote;

pub(crate) use remote::*;

const ABOUT: &str = "Runs YAML flows of steps and records every run";

const LONG_ABOUT: &str = "\
Runs flows: YAML files of ordered steps that move and transform data between files, \
commands, HTTP APIs and databases. Every run and each of its steps is recorded in the \
data directory's store (SQLite by default).";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 the run did not succeed, `validate` found problems, or a server \
refused what was asked because of the state of things; 2 a usage error (bad arguments, an \
invalid flow, a bad param), an unreachable server or an internal error.

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

const SERVE_AFTER_HELP: &str = "\
Serves the API under /api/v1 (see docs/api.md), /healthz, /readyz and /metrics, and runs \
queued runs with this node's workers. Flow files in <data>/flows are reloaded when they \
change. Once any user or API token exists (`octoflow user add`, `octoflow token create`), \
or OCTOFLOW_API_TOKEN is set, every API call needs a bearer token.

SIGTERM or Ctrl-C stops accepting requests and runs, lets running runs go on for \
`shutdown_grace` (30s), then cancels what is left; every run ends recorded. A second \
signal exits at once: the next start hands those runs back (`on_interrupt`).";

const WORKER_AFTER_HELP: &str = "\
Runs queued runs from the store that `octoflow serve` nodes fill: no API, no schedules. Every \
node of one store (a PostgreSQL database, or a SQLite file on this host) claims runs; a run \
is executed by one node only. Flow files are read from <data>/flows, as `serve` reads them, \
and reloaded when they change; callback URLs of runs point at `public_url` (default: \
http://<listen>), the API nodes' address.

On PostgreSQL a worker hears of new runs at once (LISTEN/NOTIFY); on a SQLite file shared \
with another process it looks for them every 5 s while idle.

SIGTERM or Ctrl-C stops claiming, lets running runs go on for `shutdown_grace` (30s), then \
cancels what is left; every run ends recorded. A second signal exits at once: the runs are \
handed back when their lease ends (`on_interrupt`).";

const REMOTE_AFTER_HELP: &str = "\
These commands talk to a running `octoflow serve` over its HTTP API: --server (or \
OCTOFLOW_SERVER, default http://127.0.0.1:8080) and, when the server has users or tokens, \
--token (or OCTOFLOW_TOKEN), sent as a bearer token and never printed.

Lists print aligned columns under a header on a terminal, and tab-separated rows without a \
header otherwise (for `cut` and `awk`); --json prints the server's answer as JSON instead.

Exit codes: 0 success; 1 the thing asked about failed (a followed run did not succeed, the \
server refused the run because of its concurrency rule or load); 2 a usage error (bad \
arguments, unknown flow or run, no permission, an invalid flow) or the server cannot be \
reached.";

const ADMIN_AFTER_HELP: &str = "\
Works directly on the store of the data directory (--data, OCTOFLOW_DATA_PATH or ./data; \
the store is --database, OCTOFLOW_DATABASE_URL or <data>/octoflow.db), the one `octoflow \
serve` uses; no server needs to run. Once a user or a token exists, the API asks for a \
token on every request (SPEC §11.1).";

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

    /// An environment: `config.<ENV>.yml` beside the config file is merged over it (`--env qa`:
    /// `config.qa.yml` over `config.yml`) [env: OCTOFLOW_ENV]
    #[arg(
        long = "env",
        global = true,
        value_name = "ENV",
        help_heading = "Global options"
    )]
    pub(crate) environment: Option<String>,
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
    /// Print the manual page to stdout, or write one per command into a directory
    Man(ManArgs),
    /// Print the JSON Schema of flow files, config.yml or secrets.yml, for editors
    #[command(after_help = SCHEMA_AFTER_HELP)]
    Schema(SchemaArgs),
    /// Serve the HTTP API and run queued runs with this node's workers
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Run queued runs with this node's workers, beside `serve` nodes on the same store
    #[command(after_help = WORKER_AFTER_HELP)]
    Worker(WorkerArgs),
    /// List, show and trigger the flows of a server
    #[command(after_help = REMOTE_AFTER_HELP)]
    Flows(FlowsArgs),
    /// List, show, follow, cancel and retry the runs of a server
    #[command(after_help = REMOTE_AFTER_HELP)]
    Runs(RunsArgs),
    /// List and free the concurrency locks held on a server
    #[command(after_help = REMOTE_AFTER_HELP)]
    Locks(LocksArgs),
    /// Add and list the users who log in to the API (works on the store, no server needed)
    #[command(after_help = ADMIN_AFTER_HELP)]
    User(UserArgs),
    /// Create, list and revoke API tokens (works on the store, no server needed)
    #[command(after_help = ADMIN_AFTER_HELP)]
    Token(TokenArgs),
    /// Seal a value for secrets.yml (`type: encrypted`), or make a key to seal with
    #[command(subcommand, after_help = SECRET_AFTER_HELP)]
    Secret(SecretCommand),
    /// Copy one store into another: SQLite to PostgreSQL when one machine becomes many
    #[command(subcommand)]
    Store(StoreCommand),
}

/// `octoflow store …`.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy every run (with its steps and logs), flow state, schedule, user and token of a
    /// store into another, exactly as kept; nothing may write the source meanwhile
    #[command(after_help = STORE_COPY_AFTER_HELP)]
    Copy(StoreCopyArgs),
}

const STORE_COPY_AFTER_HELP: &str = "\
Stop every node that uses the source first (`serve`, `worker`, `run`): a run that changes \
during the copy may be copied as it was before. Nothing else is read from the data \
directory but config.yml's `store:` settings (schema, max_connections), used for both ends.

Copied exactly as kept: run ids, statuses, claim generations, leases, timestamps, params, \
data, step runs and log lines; flow state; API schedules and the marks of every schedule \
(last fire, pause, removal); users with their password hashes; tokens by the digests of \
their secrets (every token and login keeps working); the node key (callback URLs keep \
working). Step run ids and log line places are the target's own, in the same order.

The target must hold no runs, users, tokens, API schedules or flow state. Runs are copied \
in id order (creation order), a batch at a time, each in one transaction: a copy that \
stops half-way leaves the source's first runs in the target, and `--resume` goes on after \
the last of them (it checks that the target holds nothing else). `--force` copies into any \
target: what it lacks is added, what it holds already is left as it is. A finished copy \
run again with either changes nothing.

Progress goes to stderr, with a summary at the end. URLs are shown without their password. \
Exit code 0 when the copy is complete; 2 when the target was refused or a store failed.";

/// `octoflow store copy`.
#[derive(Debug, Args)]
pub(crate) struct StoreCopyArgs {
    /// The store to copy from: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`
    #[arg(long, value_name = "URL")]
    pub(crate) from: String,

    /// The store to copy into: `postgres://…` or `sqlite://PATH` (made when missing)
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,

    /// Go on with an interrupted copy from the same source: the target must hold only what
    /// that copy wrote
    #[arg(long, conflicts_with = "force")]
    pub(crate) resume: bool,

    /// Copy into a target that holds records already: what it lacks is added, what it
    /// holds is left as it is
    #[arg(long)]
    pub(crate) force: bool,
}

const SCHEMA_AFTER_HELP: &str = "Save it beside your flows and name it in the first line of a file, \
`# yaml-language-server: $schema=./octoflow-flow.schema.json`, and an editor with a YAML language \
server completes fields and marks misspelt ones (docs/flow-format.md, \"Editor set-up\").";

const SECRET_AFTER_HELP: &str = "The key is 32 bytes as base64, from OCTOFLOW_SECRETS_KEY or the file \
`secrets_key_file` names in config.yml; the server opens sealed values with the same key.";

/// `octoflow secret …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Read a value on standard input and print its sealed form, `ENC[v1:…]`, for a
    /// `type: encrypted` entry of secrets.yml (one final line break is dropped)
    Seal,
    /// Print a new random key (base64) for OCTOFLOW_SECRETS_KEY or `secrets_key_file`
    Key,
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

/// `octoflow serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the API listens, `HOST:PORT` (port 0 picks a free one)
    /// [env: OCTOFLOW_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,

    /// How many runs this node runs at once; 0 serves the API only (queued runs wait for
    /// another node's workers) [env: OCTOFLOW_WORKERS] [default: 8]
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<u32>,

    /// The store: `sqlite://PATH` [env: OCTOFLOW_DATABASE_URL]
    /// [default: sqlite://<data>/octoflow.db]
    #[arg(long, value_name = "URL")]
    pub(crate) database: Option<String>,

    /// Fire no schedules on this node (another node fires them); schedules can still be
    /// listed and changed through the API
    #[arg(long)]
    pub(crate) no_scheduler: bool,

    /// How the node writes its own log to stderr: `text`, or `json` (one object per line,
    /// for a log collector) [env: OCTOFLOW_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<crate::config::LogFormat>,
}

/// `octoflow worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// How many runs this node runs at once (at least 1) [env: OCTOFLOW_WORKERS]
    /// [default: 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) workers: Option<u32>,

    /// The store the API nodes use: `postgres://…`, or `sqlite://PATH` on this host
    /// [env: OCTOFLOW_DATABASE_URL] [default: sqlite://<data>/octoflow.db]
    #[arg(long, value_name = "URL")]
    pub(crate) database: Option<String>,

    /// How the node writes its own log to stderr: `text`, or `json` (one object per line)
    /// [env: OCTOFLOW_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<crate::config::LogFormat>,
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

/// `octoflow schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Which file's schema
    #[arg(value_name = "FILE", value_enum)]
    pub(crate) file: SchemaFile,
}

/// The files `octoflow schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SchemaFile {
    /// A flow file (`flows/*.yml`), with the settings of every step kind of this build
    Flow,
    /// `config.yml`
    Config,
    /// `secrets.yml`
    Secrets,
}

/// `octoflow man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write `octoflow.1` and a page per command (`octoflow-serve.1`, …) into this directory
    /// instead of printing the main page
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
}

/// Where the store of the admin commands is: `--database`.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store: `sqlite://PATH` [env: OCTOFLOW_DATABASE_URL]
    /// [default: sqlite://<data>/octoflow.db]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Store options"
    )]
    pub(crate) database: Option<String>,
}

/// `octoflow user`.
#[derive(Debug, Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(subcommand)]
    pub(crate) command: UserCommand,
}

/// `octoflow user …`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user, or change an existing user's role and password
    #[command(after_help = USER_ADD_AFTER_HELP)]
    Add {
        /// The login name
        #[arg(value_name = "NAME")]
        name: String,
        /// What the user may do: viewer (read), operator (+ run, cancel, locks), admin (+
        /// flows, schedules, users, tokens)
        #[arg(long, value_name = "ROLE", value_parser = role)]
        role: Role,
        /// Read the password from the first line of stdin, without prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user and end its sessions
    Remove {
        /// The login name
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the users and their roles
    List(JsonArg),
}

const USER_ADD_AFTER_HELP: &str = "\
On a terminal the password is asked twice, without echo. Otherwise (or with \
--password-stdin) it is the first line of stdin: `printf '%s\\n' \"$PW\" | octoflow user add \
ops --role operator`. Only its Argon2 hash is stored.";

/// `octoflow token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

/// `octoflow token …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for a machine; prints its secret once on stdout, its id on stderr
    Create {
        /// What the token may do: viewer, operator or admin
        #[arg(long, value_name = "ROLE", value_parser = role)]
        role: Role,
        /// A name saying what it is for [default: the role]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// How long it works (`30d`, `12h`); by default until it is revoked
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        expires: Option<std::time::Duration>,
    },
    /// List the tokens (API tokens and login sessions); secrets are never shown
    List(JsonArg),
    /// Revoke a token: it stops working at once
    Revoke {
        /// The token's id, as `token list` shows it
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// Run status words, comma-separated, checked against the statuses there are.
pub(super) fn run_status(text: &str) -> Result<String, String> {
    let mut statuses = Vec::new();
    for word in text.split(',').map(str::trim) {
        let status = word
            .parse::<RunStatus>()
            .map_err(|_| format!("expected one of {}", words(RunStatus::ALL)))?;
        statuses.push(status.as_str());
    }
    Ok(statuses.join(","))
}

/// A role word.
fn role(text: &str) -> Result<Role, String> {
    text.parse::<Role>()
        .map_err(|_| format!("expected one of {}", words(Role::ALL)))
}

fn words<T: std::fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration such as `30d` or `12h`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    octoflow_core::flow::parse_duration(text).map_err(|e| e.to_string())
}

/// Splits `key=value` at the first `=`.
pub(super) fn parse_param(text: &str) -> Result<(String, String), String> {
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

//! The arguments of the commands that talk to a running server over its HTTP API: `flows`,
//! `runs` and `locks`, with where the server is and the token to show it.

use clap::{Args, Subcommand};

use super::{parse_param, run_status};

/// Where the server is and how to prove who we are: `--server`, `--token`.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server's base URL
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "OCTOFLOW_SERVER",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080",
        help_heading = "Server options"
    )]
    pub(crate) server: String,

    /// An API token (from `octoflow token create` or a login), sent as a bearer token;
    /// never printed
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "OCTOFLOW_TOKEN",
        hide_env_values = true,
        help_heading = "Server options"
    )]
    pub(crate) token: Option<String>,
}

/// `octoflow flows`.
#[derive(Debug, Args)]
pub(crate) struct FlowsArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(subcommand)]
    pub(crate) command: FlowsCommand,
}

/// `octoflow flows …`.
#[derive(Debug, Subcommand)]
pub(crate) enum FlowsCommand {
    /// List the server's flows: triggers, last run, next scheduled run, description
    List(JsonArg),
    /// Show a flow: its params, triggers, problems and source YAML
    Show {
        /// The flow's name
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Start a run of a flow on the server; prints the run's id on stdout
    #[command(after_help = TRIGGER_AFTER_HELP)]
    Trigger(TriggerArgs),
}

const TRIGGER_AFTER_HELP: &str = "\
The run is queued on the server under the flow's concurrency rule: a `skip` rule that finds \
the flow busy refuses it (exit 1, naming the blocking run); a `dedupe` rule, or an \
idempotency key already used, answers with the existing run instead of a new one (said on \
stderr, exit 0).

With --wait the run's log is followed on stderr until it ends, and the exit code is 0 only \
when it succeeded, 1 otherwise (as `octoflow run`).";

/// `octoflow flows trigger`.
#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// The flow's name
    #[arg(value_name = "NAME")]
    pub(crate) name: String,

    /// A param of the flow, read as its declared type (`-p batch=50 -p env=prd`); repeat
    /// for each param
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// A key that makes the trigger safe to repeat: a second trigger with the same key
    /// answers with the run the first one made
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,

    #[command(flatten)]
    pub(crate) wait: WaitArgs,

    #[command(flatten)]
    pub(crate) json: JsonArg,
}

/// `--wait` and `--quiet`, for commands that start a run.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// Follow the run's log on stderr until it ends; exit 0 only when it succeeded (with
    /// --json: print the finished run)
    #[arg(long)]
    pub(crate) wait: bool,

    /// With --wait: print no log lines, only how the run ended
    #[arg(short, long, requires = "wait")]
    pub(crate) quiet: bool,
}

/// `--json`.
#[derive(Debug, Args)]
pub(crate) struct JsonArg {
    /// Print the server's answer as JSON on stdout, for scripts
    #[arg(long)]
    pub(crate) json: bool,
}

/// `octoflow runs`.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(subcommand)]
    pub(crate) command: RunsCommand,
}

/// `octoflow runs …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first
    List(RunsListArgs),
    /// Show a run and its steps
    Show {
        /// The run's id
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Print a run's log; with --follow, as it is written until the run ends
    Logs(LogsArgs),
    /// Cancel a queued or running run; its running processes are stopped
    Cancel {
        /// The run's id
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Start a new run with the same flow and params; prints the new run's id on stdout
    Retry(RetryArgs),
}

/// `octoflow runs list`.
#[derive(Debug, Args)]
pub(crate) struct RunsListArgs {
    /// Only runs of this flow
    #[arg(long, value_name = "FLOW")]
    pub(crate) flow: Option<String>,

    /// Only runs with this status (queued, running, succeeded, failed, cancelled, timed_out);
    /// several are separated by commas: `failed,timed_out`
    #[arg(long, value_name = "STATUS", value_parser = run_status)]
    pub(crate) status: Option<String>,

    /// How many runs to show at most
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=500)
    )]
    pub(crate) limit: u32,

    #[command(flatten)]
    pub(crate) json: JsonArg,
}

/// `octoflow runs logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The run's id
    #[arg(value_name = "ID")]
    pub(crate) id: String,

    /// Only the lines of this step
    #[arg(long, value_name = "STEP")]
    pub(crate) step: Option<String>,

    /// Keep printing lines as the run writes them, until it ends; then exit 0 when it
    /// succeeded, 1 otherwise
    #[arg(short, long)]
    pub(crate) follow: bool,
}

/// `octoflow runs retry`.
#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The run to retry
    #[arg(value_name = "ID")]
    pub(crate) id: String,

    /// Resume at the step that failed, keeping the results of the steps before it
    #[arg(long)]
    pub(crate) from_failed: bool,

    #[command(flatten)]
    pub(crate) wait: WaitArgs,

    #[command(flatten)]
    pub(crate) json: JsonArg,
}

/// `octoflow locks`.
#[derive(Debug, Args)]
pub(crate) struct LocksArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(subcommand)]
    pub(crate) command: LocksCommand,
}

/// `octoflow locks …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LocksCommand {
    /// List the held concurrency keys and the runs holding them
    List(JsonArg),
    /// Free a stale lock (the runs holding it go on; they no longer count against its limit)
    Rm {
        /// The lock's key, as `locks list` shows it
        #[arg(value_name = "KEY", required_unless_present = "all")]
        key: Option<String>,
        /// Free every lock
        #[arg(long, conflicts_with = "key")]
        all: bool,
        #[command(flatten)]
        json: JsonArg,
    },
}

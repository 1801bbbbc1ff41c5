//! One module per command; [`dispatch`] picks it.

mod completions;
mod flows;
mod init;
mod locks;
mod man;
mod node_start;
mod run;
mod runs;
mod schema;
mod secret;
mod serve;
mod store;
mod token;
mod user;
mod validate;
mod worker;

use std::process::ExitCode;

use anyhow::Result;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::{Config, Env, LogFormat};

/// Runs the command the line asked for.
pub(crate) fn dispatch(cli: &Cli) -> Result<ExitCode> {
    let env = Env::from_process();
    match &cli.command {
        Command::Run(args) => run::run(&cli.global, args, env),
        Command::Validate(args) => validate::validate(&cli.global, args, env),
        Command::Init(args) => init::init(&cli.global, args, &env),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => man::man(args),
        Command::Schema(args) => schema::schema(&cli.global, args, env),
        Command::Serve(args) => serve::serve(&cli.global, args, env),
        Command::Worker(args) => worker::worker(&cli.global, args, env),
        Command::Flows(args) => flows::flows(args),
        Command::Runs(args) => runs::runs(args),
        Command::Locks(args) => locks::locks(args),
        Command::User(args) => user::user(&cli.global, args, env),
        Command::Token(args) => token::token(&cli.global, args, env),
        Command::Secret(command) => secret::secret(&cli.global, command, env),
        Command::Store(command) => store::store(&cli.global, command, env),
    }
}

/// The settings flags every command takes (`--data`, `--config`, `--env`); a command adds
/// its own (`database`, `data_hint`) with struct update syntax.
fn global_flags(global: &crate::cli::GlobalArgs) -> crate::config::Flags {
    crate::config::Flags {
        data: global.data.clone(),
        config: global.config.clone(),
        environment: global.environment.clone(),
        ..crate::config::Flags::default()
    }
}

/// The exit code of a command that failed: 1 when the server refused what was asked because
/// of the state of things (SPEC §14), else 2.
pub(crate) fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(crate::remote::exit_code(err))
}

/// Makes the log of `config` the whole process's: requests, runs and jq programs run on tasks
/// and threads of their own, which a subscriber attached to the command's future
/// (`WithSubscriber`) would not reach. A process runs one command, so the first call holds;
/// a later one changes nothing.
fn install_log(config: &Config) {
    let _ = tracing::subscriber::set_global_default(log_subscriber(config));
}

/// The log of a command, on stderr, filtered by `OCTOFLOW_LOG` (default `warn`).
fn log_subscriber(config: &Config) -> Box<dyn tracing::Subscriber + Send + Sync + 'static> {
    // The CLI reports interrupted runs itself, in its own words.
    let directives = format!("{},octoflow_core::engine::recover=off", config.log);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only for a person at a terminal; a journal or a file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => Box::new(builder.without_time().with_target(false).finish()),
        // For a log collector: every event with its time and target.
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

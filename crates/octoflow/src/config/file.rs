//! config.yml as written: its shape (which is also its JSON Schema, `octoflow schema
//! config`), reading it with messages that name the place, and the environment's file
//! merged over it (`--env`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use octoflow_core::flow::{Dur, suggest};
use octoflow_publish::SinkConfig;
use octoflow_sql::ConnectionConfig;
use serde::Deserialize;

use super::sections::{
    AuthConfig, FilesConfig, HttpSection, LimitsConfig, SmtpConfig, StoreSection,
};
use super::{CONFIG_FILE_NAME, Env, Flags, environment, step_env};

/// config.yml as written (SPEC §12): every key optional, unknown keys refused. Its JSON
/// Schema (`octoflow schema config`) is made from this type.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "octoflow config.yml")]
pub(super) struct ConfigFile {
    /// The address the server listens on (default `127.0.0.1:8080`).
    pub(super) listen: Option<String>,
    /// The address users reach the server at (URLs in answers, secure cookies behind https).
    pub(super) public_url: Option<String>,
    /// The store: `sqlite://PATH` (default `<data>/octoflow.db`) or `postgres://…`.
    pub(super) database: Option<String>,
    /// How many runs this node runs at once.
    pub(super) workers: Option<u32>,
    /// Flows whose schedules and triggers start with the server.
    pub(super) autostart: Option<Vec<String>>,
    /// Who may use the API (`token`, `open`, outside JWTs).
    pub(super) auth: Option<AuthConfig>,
    /// Bounds on bodies, uploads, queues and retention.
    pub(super) limits: Option<LimitsConfig>,
    /// Folders outside the data directory that file steps and watches may use.
    pub(super) files: Option<FilesConfig>,
    /// The HTTP client of `rest` steps.
    pub(super) http: Option<HttpSection>,
    /// Databases of `sql` steps, by name.
    #[serde(default)]
    pub(super) connections: BTreeMap<String, ConnectionConfig>,
    /// Streams and endpoints of `publish` steps, by name.
    #[serde(default)]
    pub(super) sinks: BTreeMap<String, SinkConfig>,
    /// Mail servers of `email` steps, by name.
    #[serde(default)]
    pub(super) smtp: BTreeMap<String, SmtpConfig>,
    /// Where job-tracker files are written.
    pub(super) tracker_dir: Option<PathBuf>,
    /// What step processes see of the environment.
    pub(super) steps: Option<step_env::StepsSection>,
    /// SQLite store settings.
    pub(super) store: Option<StoreSection>,
    /// How long a cancelled step's processes have between SIGTERM and SIGKILL.
    pub(super) kill_grace: Option<Dur>,
    /// How long a stopping server lets running runs finish.
    pub(super) shutdown_grace: Option<Dur>,
    /// How long a node's claim on a run lasts without renewal.
    pub(super) lease: Option<Dur>,
    /// The flows directory (default `<data>/flows`).
    pub(super) flows_path: Option<PathBuf>,
    /// The templates directory (default `<data>/templates`).
    pub(super) templates_path: Option<PathBuf>,
    /// The secrets file (default `<data>/secrets.yml`).
    pub(super) secrets_path: Option<PathBuf>,
    /// The file holding the key of sealed secrets.
    pub(super) secrets_key_file: Option<PathBuf>,
}

/// The JSON Schema of `config.yml`.
pub(crate) fn config_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<ConfigFile>()
        .to_value()
}

/// Reads and parses a config file; a problem is reported as `file:line:column: message`.
fn read_config_file(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file `{}`", path.display()))?;
    parse_config(&text).map_err(|message| anyhow!("{}:{message}", path.display()))
}

/// The config file (`--config`, `OCTOFLOW_CONFIG_FILE`, else `<data>/config.yml` when it
/// exists) and its settings, with the environment's file merged over it (`--env`).
pub(super) fn read_file(
    flags: &Flags,
    env: &Env,
    data_dir: &Path,
) -> Result<(Option<PathBuf>, ConfigFile)> {
    let explicit_file = flags
        .config
        .clone()
        .or_else(|| env.path("OCTOFLOW_CONFIG_FILE"));
    let default_file = data_dir.join(CONFIG_FILE_NAME);
    let config_file = explicit_file.or_else(|| default_file.is_file().then_some(default_file));
    let environment = flags
        .environment
        .clone()
        .or_else(|| env.get("OCTOFLOW_ENV").map(ToOwned::to_owned));
    let file = match (&config_file, environment) {
        (Some(path), Some(environment)) => environment::read_merged(path, &environment)?,
        (Some(path), None) => read_config_file(path)?,
        (None, Some(environment)) => bail!(
            "`--env {environment}` needs a config file to merge `config.{environment}.yml` over"
        ),
        (None, None) => ConfigFile::default(),
    };
    Ok((config_file, file))
}

/// Parses config text; the error is `line:column: message`.
pub(super) fn parse_config(text: &str) -> Result<ConfigFile, String> {
    octoflow_core::yaml::from_str::<Option<ConfigFile>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|err| {
            let place = err.location().map_or_else(
                || " ".to_owned(),
                |l| format!("{}:{}: ", l.line(), l.column()),
            );
            format!("{place}{}", config_message(&err.to_string()))
        })
}

/// The first line of a YAML error, without its place prefix, with a suggestion for an
/// unknown key.
pub(super) fn config_message(full: &str) -> String {
    let first = full.lines().next().unwrap_or(full).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.split_once(": ") {
        Some((place, rest)) if place.starts_with("line ") => rest,
        _ => first,
    };
    let Some((field, expected)) = first
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once("`, expected one of "))
    else {
        return first.to_owned();
    };
    let candidates: Vec<&str> = expected.split(", ").map(|c| c.trim_matches('`')).collect();
    match suggest(field, candidates.iter().copied()) {
        Some(s) => format!("unknown field `{field}`; did you mean `{s}`?"),
        None => format!(
            "unknown field `{field}`; expected one of {}",
            candidates.join(", ")
        ),
    }
}

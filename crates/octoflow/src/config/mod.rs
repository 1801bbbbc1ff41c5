//! Settings, read once: `config.yml` < `OCTOFLOW_*` environment variables < flags
//! (SPEC §3, §12; STYLE B.5).
//!
//! This is the only module that reads the process environment: [`Env::from_process`] takes
//! one snapshot, which settles the settings here and resolves `type: env` secrets; steps see
//! only its allow-listed part (`step_env`).
//!
//! Paths in `config.yml` are relative to the data directory; paths in flags and environment
//! variables are relative to the current directory. A relative `sqlite:` path is relative to
//! the current directory, as everywhere else that takes a database URL.

use octoflow_publish::SinkConfig;
use octoflow_sql::ConnectionConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use octoflow_core::flow::{Dur, parse_duration};
use octoflow_core::secrets::{SealKey, Secret};
mod environment;
mod file;
mod sections;
mod step_env;

pub(crate) use file::config_schema;
use file::read_file;

#[cfg(test)]
use sections::ByteSize;
pub(crate) use sections::{
    AuthConfig, FilesConfig, HttpSection, LimitsConfig, SmtpConfig, StoreSection, SynchronousMode,
};

/// The data directory when none is given.
const DEFAULT_DATA_DIR: &str = "data";
/// The config file's name inside the data directory.
pub(crate) const CONFIG_FILE_NAME: &str = "config.yml";
/// The directory of flow files inside the data directory.
pub(crate) const FLOWS_DIR_NAME: &str = "flows";

/// A snapshot of the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the process environment once; variables whose name or value is not UTF-8 are
    /// left out (they could not be used in templates anyway).
    pub(crate) fn from_process() -> Self {
        // The one sanctioned read of the environment (STYLE B.5, clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// An environment with exactly these variables (tests).
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A variable's value, when set and not empty.
    fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(PathBuf::from)
    }

    fn parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.get(key)
            .map(|text| {
                text.parse::<T>().map_err(|e| {
                    anyhow!("environment variable `{key}`: invalid value `{text}`: {e}")
                })
            })
            .transpose()
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.get(key)
            .map(|text| {
                parse_duration(text).map_err(|e| anyhow!("environment variable `{key}`: {e}"))
            })
            .transpose()
    }
}

/// What the command line says about settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    /// `--data`.
    pub(crate) data: Option<PathBuf>,
    /// `--config`.
    pub(crate) config: Option<PathBuf>,
    /// `--env`: the environment whose `config.<env>.yml` is merged over the config file.
    pub(crate) environment: Option<String>,
    /// `--database`.
    pub(crate) database: Option<String>,
    /// A path the command works on (a flow file, a flows directory) from which the data
    /// directory may be inferred when neither `--data` nor `OCTOFLOW_DATA_PATH` is given.
    pub(crate) data_hint: Option<PathBuf>,
}

/// The store a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// A `SQLite` file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by several nodes: its URL (which may hold a password).
    Postgres(Secret<String>),
}

/// Every setting, resolved.
#[derive(Debug, Clone)]
#[allow(dead_code)] // settings `octoflow serve` uses; parsed and checked here already
pub(crate) struct Config {
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// The config file that was read, if any.
    pub(crate) file: Option<PathBuf>,
    /// Flow files.
    pub(crate) flows_dir: PathBuf,
    /// Templates of `jinja` steps.
    pub(crate) templates_dir: PathBuf,
    /// Secrets (SPEC §10).
    pub(crate) secrets_file: PathBuf,
    /// The file holding the key of sealed secrets (`secrets_key_file`), if any.
    pub(crate) secrets_key_file: Option<PathBuf>,
    /// The store's URL (it may hold a password).
    pub(crate) database: Secret<String>,
    /// Where `serve` listens.
    pub(crate) listen: String,
    /// The URL external jobs reach this node at (for `run.callback_url`); `None` means
    /// `http://` + `listen`.
    pub(crate) public_url: Option<String>,
    /// `OCTOFLOW_API_TOKEN`: a bearer token with the admin role.
    pub(crate) api_token: Option<Secret<String>>,
    /// `OCTOFLOW_SECRETS_KEY`: the key of sealed secrets, as base64.
    pub(crate) secrets_key: Option<Secret<String>>,
    /// Concurrent runs per node.
    pub(crate) workers: u32,
    /// Flows whose schedules start at boot; `None` means all.
    pub(crate) autostart: Option<Vec<String>>,
    /// API authentication.
    pub(crate) auth: AuthConfig,
    /// Sizes and retention.
    pub(crate) limits: LimitsConfig,
    /// Where steps may touch files.
    pub(crate) files: FilesConfig,
    /// The HTTP client of `rest` steps.
    pub(crate) http: HttpSection,
    /// `sql` step connections, by name.
    pub(crate) connections: BTreeMap<String, ConnectionConfig>,
    /// How the embedded store keeps its file.
    pub(crate) store: StoreSection,
    /// `publish` step sinks, by name.
    pub(crate) sinks: BTreeMap<String, SinkConfig>,
    /// Mail servers of `email` steps, by name.
    pub(crate) smtp: BTreeMap<String, SmtpConfig>,
    /// Where job-tracker documents are written (SPEC §13).
    pub(crate) tracker_dir: Option<PathBuf>,
    /// Between SIGTERM and SIGKILL for cancelled processes.
    pub(crate) kill_grace: Duration,
    /// How long running steps may finish when a node shuts down.
    pub(crate) shutdown_grace: Duration,
    /// How long a running run's lease lasts without renewal: a node that died is found, and
    /// its runs handed back, this long after its last renewal.
    pub(crate) lease: Duration,
    /// The log filter (`OCTOFLOW_LOG`, tracing's env-filter syntax).
    pub(crate) log: String,
    /// How the node's own log lines are written (`OCTOFLOW_LOG_FORMAT`, `--log-format`).
    pub(crate) log_format: LogFormat,
    /// The process environment, for `type: env` secrets.
    pub(crate) process_env: BTreeMap<String, String>,
    /// What steps see of it: templates (`env`) and processes (`steps.env_pass`).
    pub(crate) step_env: BTreeMap<String, String>,
}

impl Config {
    /// Settles every setting from the config file, the environment and the flags.
    pub(crate) fn load(flags: &Flags, env: Env) -> Result<Self> {
        let data_dir = explicit_data_dir(flags.data.as_deref(), &env)
            .or_else(|| flags.data_hint.as_deref().and_then(infer_data_dir))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

        let (config_file, file) = read_file(flags, &env, &data_dir)?;
        let in_data = |p: PathBuf| data_dir.join(p);

        // A path from the environment, else the config file (in the data directory), else
        // the default in the data directory.
        let path_of = |var: &str, file: Option<PathBuf>, default: &str| {
            env.path(var)
                .or_else(|| file.map(in_data))
                .unwrap_or_else(|| data_dir.join(default))
        };
        let flows_dir = path_of("OCTOFLOW_FLOWS_PATH", file.flows_path, FLOWS_DIR_NAME);
        let templates_dir = path_of("OCTOFLOW_TEMPLATES_PATH", file.templates_path, "templates");
        let secrets_file = path_of("OCTOFLOW_SECRETS_PATH", file.secrets_path, "secrets.yml");
        let database = flags
            .database
            .clone()
            .or_else(|| env.get("OCTOFLOW_DATABASE_URL").map(ToOwned::to_owned))
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("octoflow.db").display()));
        let listen = env
            .get("OCTOFLOW_LISTEN")
            .map(ToOwned::to_owned)
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let public_url = env
            .get("OCTOFLOW_PUBLIC_URL")
            .map(ToOwned::to_owned)
            .or(file.public_url);
        let api_token = env
            .get("OCTOFLOW_API_TOKEN")
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(t.to_owned()));
        let workers = env
            .parsed::<u32>("OCTOFLOW_WORKERS")?
            .or(file.workers)
            .unwrap_or(8);
        if workers == 0 {
            bail!("`workers` must be at least 1");
        }
        let seconds = Duration::from_secs;
        let kill_grace = duration_of(&env, "OCTOFLOW_KILL_GRACE", file.kill_grace, seconds(5))?;
        let shutdown_grace = duration_of(
            &env,
            "OCTOFLOW_SHUTDOWN_GRACE",
            file.shutdown_grace,
            seconds(30),
        )?;
        let lease = duration_of(&env, "OCTOFLOW_LEASE", file.lease, seconds(30))?;
        if lease < Duration::from_secs(1) {
            bail!("`lease` must be at least 1s");
        }
        let tracker_dir = env
            .path("OCTOFLOW_TRACKER_DIR")
            .or_else(|| file.tracker_dir.map(in_data));
        let log = env.get("OCTOFLOW_LOG").unwrap_or("warn").to_owned();
        let log_format = log_format_of(&env)?;
        let step_env = step_env::step_env(&env.vars, &file.steps.unwrap_or_default())?;
        for (name, connection) in &file.connections {
            connection
                .check()
                .map_err(|e| anyhow::anyhow!("`connections.{name}.url`: {e}"))?;
        }

        Ok(Self {
            data_dir: data_dir.clone(),
            file: config_file,
            flows_dir,
            templates_dir,
            secrets_file,
            secrets_key_file: file.secrets_key_file.map(in_data),
            database: Secret::new(database),
            listen,
            public_url,
            api_token,
            secrets_key: env
                .get("OCTOFLOW_SECRETS_KEY")
                .filter(|k| !k.is_empty())
                .map(|k| Secret::new(k.to_owned())),
            workers,
            autostart: file.autostart,
            auth: file.auth.unwrap_or_default(),
            limits: file.limits.unwrap_or_default(),
            files: file.files.unwrap_or_default(),
            http: file.http.unwrap_or_default(),
            connections: file.connections,
            store: file.store.unwrap_or_default(),
            sinks: file.sinks,
            smtp: file.smtp,
            tracker_dir,
            kill_grace,
            shutdown_grace,
            lease,
            log,
            log_format,
            process_env: env.vars,
            step_env,
        })
    }

    /// octoflow's own files, which steps may not touch unless `files.roots` names them: the
    /// secrets, the config file, the store (and its WAL), flows, templates, node records.
    pub(crate) fn own_files(&self) -> Vec<PathBuf> {
        let mut own = vec![
            self.secrets_file.clone(),
            self.data_dir.join(CONFIG_FILE_NAME),
            self.flows_dir.clone(),
            self.templates_dir.clone(),
            self.data_dir.join(octoflow_core::process_groups::NODES_DIR),
        ];
        own.extend(self.file.clone());
        if let Ok(Database::Sqlite(db)) = self.database() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                own.push(PathBuf::from(name));
            }
        }
        own.into_iter()
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect()
    }

    /// Values to redact like secrets: the admin token and every password written in a
    /// configured URL (the database, connections, sinks, mail servers).
    pub(crate) fn hidden_values(&self) -> Vec<String> {
        let mut urls: Vec<&str> = vec![self.database.expose()];
        urls.extend(self.connections.values().map(|c| c.url.as_str()));
        urls.extend(self.smtp.values().map(|c| c.url.as_str()));
        for sink in self.sinks.values() {
            urls.extend(sink.urls());
        }
        let mut hidden: Vec<String> = urls.into_iter().flat_map(step_env::url_password).collect();
        hidden.extend(self.api_token.as_ref().map(|t| t.expose().clone()));
        hidden.extend(self.secrets_key.as_ref().map(|k| k.expose().clone()));
        hidden
    }

    /// The key of sealed secrets: `OCTOFLOW_SECRETS_KEY` (base64), else the file
    /// `secrets_key_file` names; `None` without either.
    pub(crate) fn seal_key(&self) -> Result<Option<SealKey>> {
        let text = match (&self.secrets_key, &self.secrets_key_file) {
            (Some(text), _) => text.expose().clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `secrets_key_file` `{}`", path.display()))?,
            (None, None) => return Ok(None),
        };
        SealKey::from_base64(&text)
            .map(Some)
            .map_err(|e| anyhow!("the secrets key: {e}"))
    }

    /// The store the database URL names; only `sqlite:` in this build.
    pub(crate) fn database(&self) -> Result<Database> {
        parse_database_url(self.database.expose())
    }
}

/// How the node writes its own log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event, with its time, level, message and fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("`{other}` is not `text` or `json`")),
        }
    }
}

/// The data directory from `--data` or `OCTOFLOW_DATA_PATH`, else `./data`.
pub(crate) fn data_dir(flag: Option<&Path>, env: &Env) -> PathBuf {
    explicit_data_dir(flag, env).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

fn explicit_data_dir(flag: Option<&Path>, env: &Env) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| env.path("OCTOFLOW_DATA_PATH"))
}

/// The data directory a flow path implies: for `demo/flows/x.yml` or `demo/flows`, `demo`
/// — when `demo/config.yml` exists.
pub(crate) fn infer_data_dir(path: &Path) -> Option<PathBuf> {
    let flows = if path.is_dir() { path } else { path.parent()? };
    if flows.file_name()? != FLOWS_DIR_NAME {
        return None;
    }
    let data = match flows.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    data.join(CONFIG_FILE_NAME).is_file().then_some(data)
}

/// `sqlite://PATH` or `sqlite:PATH`, or `postgres://…` (`postgresql://…`); anything else is
/// refused (without echoing the URL, which may hold a password).
pub(crate) fn parse_database_url(url: &str) -> Result<Database> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(Secret::new(url.to_owned())));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        bail!("database URL must start with `sqlite:` or `postgres:`");
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() || path.starts_with(':') {
        bail!("database URL `{url}` names no file; use sqlite://PATH");
    }
    if path.contains('?') {
        bail!("database URL `{url}`: options after `?` are not supported");
    }
    Ok(Database::Sqlite(PathBuf::from(path)))
}

/// `OCTOFLOW_LOG_FORMAT`, or text.
fn log_format_of(env: &Env) -> Result<LogFormat> {
    match env.get("OCTOFLOW_LOG_FORMAT") {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow!("`OCTOFLOW_LOG_FORMAT`: {e}")),
        None => Ok(LogFormat::Text),
    }
}

/// A duration setting: from the environment variable `var`, else the config file, else
/// `default`.
fn duration_of(env: &Env, var: &str, file: Option<Dur>, default: Duration) -> Result<Duration> {
    Ok(env.duration(var)?.or(file.map(Dur::get)).unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::file::parse_config;
    use super::*;

    fn load(pairs: &[(&str, &str)], flags: &Flags) -> Result<Config> {
        Config::load(flags, Env::from_pairs(pairs))
    }

    #[test]
    fn defaults_live_in_the_data_dir() {
        let c = load(&[], &Flags::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.flows_dir, PathBuf::from("data/flows"));
        assert_eq!(c.templates_dir, PathBuf::from("data/templates"));
        assert_eq!(c.database.expose(), "sqlite://data/octoflow.db");
        assert_eq!(
            c.database().unwrap(),
            Database::Sqlite("data/octoflow.db".into())
        );
        assert_eq!(c.limits.max_result_bytes, ByteSize(1 << 20));
        assert_eq!(c.kill_grace, Duration::from_secs(5));
        assert!(c.file.is_none());
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(
            data.join("config.yml"),
            "workers: 3\nlisten: 0.0.0.0:1\ndatabase: sqlite://file.db\n\
             limits: { max_result_bytes: 2KiB }\nkill_grace: 1s\nflows_path: elsewhere\n\
             store: { synchronous: full }\nsteps: { env_pass: [AWS_PROFILE] }\n",
        )
        .unwrap();
        let data_s = data.to_str().unwrap();
        let flags = Flags {
            data: Some(data.to_path_buf()),
            ..Flags::default()
        };
        let c = load(&[("OCTOFLOW_WORKERS", "4")], &flags).unwrap();
        assert_eq!(c.workers, 4);
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.database.expose(), "sqlite://file.db");
        assert_eq!(c.limits.max_result_bytes, ByteSize(2048));
        assert_eq!(c.kill_grace, Duration::from_secs(1));
        assert_eq!(c.flows_dir, data.join("elsewhere"));
        assert_eq!(c.file, Some(data.join("config.yml")));
        assert_eq!(c.store.synchronous, SynchronousMode::Full);

        let env = [
            ("OCTOFLOW_DATABASE_URL", "sqlite://env.db"),
            ("OCTOFLOW_DATA_PATH", "ignored"),
        ];
        let flags = Flags {
            database: Some("sqlite://flag.db".into()),
            ..flags
        };
        let c = load(&env, &flags).unwrap();
        assert_eq!(c.database.expose(), "sqlite://flag.db");
        assert_eq!(c.data_dir.to_str(), Some(data_s));
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, "workers: 2\nlimits:\n  run_retntion: 30d\n").unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let err = load(&[], &flags).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:3:3: unknown field `run_retntion`; did you mean `run_retention`?",
                path.display()
            )
        );
    }

    #[test]
    fn a_commented_out_file_is_empty() {
        assert!(parse_config("# workers: 8\n").is_ok());
        assert!(parse_config("").is_ok());
        assert!(parse_config("auth: { public_read: true, token_ttl: 15m }\n").is_ok());
        assert!(
            parse_config("sinks: { s: { kind: kinesis, stream: x, region: us-east-1 } }\n").is_ok()
        );
        let err = parse_config("kill_grace: 10 minutes\n").unwrap_err();
        assert!(
            err.starts_with("1:13: invalid duration `10 minutes`"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_and_postgres_urls_are_supported() {
        case("sqlite://data/x.db", Some("data/x.db"));
        case("sqlite:///var/x.db", Some("/var/x.db"));
        case("sqlite:x.db", Some("x.db"));
        case("mysql://h/db", None);
        let Ok(Database::Postgres(url)) = parse_database_url("postgresql://u:secret@h/db") else {
            panic!("a PostgreSQL URL is a database");
        };
        assert_eq!(url.expose(), "postgresql://u:secret@h/db");
        assert!(!format!("{url:?}").contains("secret"));
        let err = parse_database_url("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("database URL must start with `sqlite:` or `postgres:`"),
            "{err}"
        );
        assert!(!err.contains("secret"));
    }

    #[track_caller]
    fn case(url: &str, path: Option<&str>) {
        match (parse_database_url(url), path) {
            (Ok(Database::Sqlite(p)), Some(want)) => assert_eq!(p, PathBuf::from(want)),
            (Err(_), None) => {}
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!("1MiB".parse::<ByteSize>(), Ok(ByteSize(1 << 20)));
        assert_eq!("512 KiB".parse::<ByteSize>(), Ok(ByteSize(512 << 10)));
        assert_eq!("10MB".parse::<ByteSize>(), Ok(ByteSize(10_000_000)));
        assert_eq!("42".parse::<ByteSize>(), Ok(ByteSize(42)));
        assert!("1 lots".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn the_data_dir_is_inferred_from_a_flow_beside_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo");
        std::fs::create_dir_all(demo.join("flows")).unwrap();
        let flow = demo.join("flows/hello.yml");
        std::fs::write(&flow, "steps: []").unwrap();
        assert_eq!(infer_data_dir(&flow), None, "no config.yml yet");
        std::fs::write(demo.join("config.yml"), "").unwrap();
        assert_eq!(infer_data_dir(&flow), Some(demo.clone()));
        assert_eq!(infer_data_dir(&demo.join("flows")), Some(demo.clone()));
        let flags = Flags {
            data_hint: Some(flow),
            ..Flags::default()
        };
        assert_eq!(load(&[], &flags).unwrap().data_dir, demo);
        let c = load(&[("OCTOFLOW_DATA_PATH", "other")], &flags).unwrap();
        assert_eq!(
            c.data_dir,
            PathBuf::from("other"),
            "the environment wins over inference"
        );
    }
}

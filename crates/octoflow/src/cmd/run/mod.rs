//! `octoflow run FLOW`: load and check the flow, check the params (nothing is recorded when
//! either is wrong), end the runs a dead `octoflow` process left `running`, then run the
//! flow in this process with live progress, cancelling it on Ctrl-C or SIGTERM.

mod dry;
mod execute;
mod input;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, RunRequest};
use octoflow_core::fs::FilesRoot;
use octoflow_core::process_groups::ProcessGroups;
use octoflow_core::secrets::Secrets;
use octoflow_core::store::{MemoryStore, TriggerInfo};
use serde_json::json;

use crate::cli::{GlobalArgs, RunArgs};
use crate::config::{Config, Env, Flags};
use crate::live::Progress;
use crate::node::Node;
use crate::{flows, output};

/// Runs `octoflow run`.
pub(crate) fn run(global: &GlobalArgs, args: &RunArgs, env: Env) -> Result<ExitCode> {
    let flags = Flags {
        database: args.database.clone(),
        data_hint: flows::looks_like_path(&args.flow).then(|| PathBuf::from(&args.flow)),
        ..super::global_flags(global)
    };
    let config = Config::load(&flags, env)?;
    let path = flows::resolve(&args.flow, &config.flows_dir)?;
    let files = prepare_data_dir(&config)?;
    let registry = Arc::new(flows::registry(&config));
    let flow = flows::loader(&registry, &config, Some(files.clone()))
        .load_file(&path)
        .map_err(anyhow::Error::new)?;

    // Params are checked before anything is opened or recorded.
    let params = input::check_params(&flow, &args.params)?;
    let request = RunRequest {
        params,
        input: input::read_input(args.data_file.as_deref())?,
        trigger: TriggerInfo {
            kind: "manual".to_owned(),
            detail: json!({ "via": "cli" }),
        },
        parent_run_id: None,
        id: None,
        has_files: false,
    };
    let secrets = load_secrets(&config)?;
    let node = Node::current()?;
    let catalog = DirCatalog::new(
        config.flows_dir.clone(),
        registry.clone(),
        config.templates_dir.clone(),
        files.clone(),
    );
    let engine_config = engine_config(&config, files, node.id());

    if args.dry_run {
        let engine =
            Engine::new(Arc::new(MemoryStore::new()), engine_config).with_secrets(&secrets);
        let dry = engine
            .dry_run(&flow, &request)
            .map_err(input::accept_error)?;
        output::stdout(&dry::dry_run_text(&dry, args.json)?)?;
        return Ok(ExitCode::SUCCESS);
    }

    let job = execute::Job {
        engine: engine_config,
        secrets,
        catalog: Arc::new(catalog),
        node,
        flow: Arc::new(flow),
        request,
        progress: Arc::new(Progress::new(std::io::stderr().is_terminal(), args.quiet)),
        tracker_dir: config.tracker_dir.clone(),
        json: args.json,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let store = config.database()?;
    super::install_log(&config);
    let ended = runtime.block_on(job.execute(store, config.store.clone()));
    // Let the tracker's last writes land, then write its final document: nothing queued
    // can overwrite it once the runtime is down.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let ended = ended?;
    ended.write_tracker()?;
    Ok(ended.exit_code())
}

/// Creates the data directory's folders when missing and confines file paths to it.
pub(super) fn prepare_data_dir(config: &Config) -> Result<FilesRoot> {
    for dir in [&config.data_dir, &config.flows_dir, &config.templates_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory `{}`", dir.display()))?;
    }
    let roots = &config.files.roots;
    let files = FilesRoot::new(&config.data_dir, roots, config.files.allow_absolute).with_context(
        || {
            format!(
                "cannot use the data directory `{}` or a `files.roots` entry",
                config.data_dir.display()
            )
        },
    )?;
    Ok(files.protect(config.own_files()))
}

pub(super) fn engine_config(config: &Config, files: FilesRoot, node: String) -> EngineConfig {
    let mut engine = EngineConfig::new(files);
    engine.templates_dir.clone_from(&config.templates_dir);
    engine.kill_grace = config.kill_grace;
    engine.lease = config.lease;
    engine.renew_every = config.lease / 3;
    engine.max_result_bytes =
        usize::try_from(config.limits.max_result_bytes.0).unwrap_or(usize::MAX);
    engine.env.clone_from(&config.step_env);
    engine.process_groups = ProcessGroups::new(&config.data_dir, &node);
    engine.node = node;
    engine
}

/// Warns when others than the owner may read the secrets file.
fn warn_if_shared(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: secrets file `{}` can be read by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}

/// The secrets of `secrets.yml`; none when the file does not exist.
pub(super) fn load_secrets(config: &Config) -> Result<Secrets> {
    let path = &config.secrets_file;
    warn_if_shared(path);
    let mut secrets = match std::fs::read_to_string(path) {
        Ok(text) => Secrets::parse_with_key(
            &text,
            &path.display().to_string(),
            &config.process_env,
            config.seal_key()?.as_ref(),
        )?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Secrets::default(),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read secrets file `{}`", path.display()));
        }
    };
    if !secrets.vault_refs().is_empty() {
        // Read once at start, on a thread of its own: callers may be on the async runtime.
        let env = &config.process_env;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    crate::remote::runtime()?.block_on(crate::vault::read_all(&mut secrets, env))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("reading secrets from Vault panicked"))?
        })?;
    }
    for value in config.hidden_values() {
        secrets.hide(&value);
    }
    Ok(secrets)
}

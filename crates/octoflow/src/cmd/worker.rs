//! `octoflow worker`: a node that only runs queued runs — no API, no scheduler — beside
//! `serve` nodes on the same store. Flow triggers fire for the runs that end here, and the
//! flows directory's folder watches run as on any node. SIGTERM stops it as it stops `serve`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::node_start::{NodeStart, stop_on_signal};
use crate::cli::{GlobalArgs, WorkerArgs};
use crate::config::{Config, Env, Flags};

/// Runs `octoflow worker`.
pub(crate) fn worker(global: &GlobalArgs, args: &WorkerArgs, env: Env) -> Result<ExitCode> {
    let begun = Instant::now();
    let flags = Flags {
        database: args.database.clone(),
        ..super::global_flags(global)
    };
    let mut config = Config::load(&flags, env)?;
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    if config.workers == 0 {
        anyhow::bail!("a worker node needs at least one worker (`workers` is 0)");
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    super::install_log(&config);
    runtime.block_on(run(config, begun))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

async fn run(config: Config, begun: Instant) -> Result<()> {
    // Runs' callback URLs point at the API nodes.
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let started = NodeStart::open(&config, &public_url).await?;
    started.recover(&config, "octoflow worker").await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal("octoflow worker", shutdown.clone()));
    // With other nodes on the store: live views and cancels of runs across them.
    tokio::spawn({
        let (service, shutdown) = (started.service.clone(), shutdown.clone());
        async move { service.exchange_notices(shutdown).await }
    });
    let triggers =
        octoflow_core::triggers::start(&started.service, &started.library, shutdown.clone());
    let ready_ms = begun.elapsed().as_millis();
    tracing::info!(ready_ms, "Working.");
    crate::output::note(&format!(
        "octoflow worker: running queued runs (node {}, {} workers, ready in {ready_ms} ms)",
        started.node.id(),
        config.workers,
    ));
    started.service.run_workers(shutdown).await;
    triggers.stop().await;
    crate::output::note("octoflow worker: stopped; every run is recorded");
    Ok(())
}

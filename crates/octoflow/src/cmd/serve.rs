//! `octoflow serve`: the HTTP API and this node's workers over one store, with flow files
//! hot-reloaded and their schedules, folder watches and flow triggers firing, until SIGTERM or Ctrl-C
//! — then it stops accepting, lets running runs finish for `shutdown_grace`, cancels what is
//! left and exits with every run recorded.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use octoflow_core::scheduler::{Autostart, Scheduler, SystemClock};
use octoflow_core::secrets::Secrets;
use octoflow_core::service::Service;
use octoflow_core::store::Store;
use octoflow_server::{AppState, AuthSettings, IssuerTokens, JwtCheck};
use tokio_util::sync::CancellationToken;

use super::node_start::{NodeStart, stop_on_signal};
use crate::cli::{GlobalArgs, ServeArgs};
use crate::config::{Config, Env, Flags};

/// Runs `octoflow serve`.
pub(crate) fn serve(global: &GlobalArgs, args: &ServeArgs, env: Env) -> Result<ExitCode> {
    let begun = Instant::now();
    let flags = Flags {
        database: args.database.clone(),
        ..super::global_flags(global)
    };
    let mut config = Config::load(&flags, env)?;
    if let Some(listen) = &args.listen {
        listen.clone_into(&mut config.listen);
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if let Some(workers) = args.workers {
        // 0 is allowed here only: an API-only node, whose runs another node's workers run.
        config.workers = workers;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    super::install_log(&config);
    let scheduling = !args.no_scheduler;
    runtime.block_on(run(config, begun, scheduling))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

async fn run(config: Config, begun: Instant, scheduling: bool) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", config.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(address));
    let started = NodeStart::open(&config, &public_url).await?;
    refuse_open_api_beyond_loopback(&config, started.store.as_ref(), address).await?;
    started.recover(&config, "octoflow serve").await?;
    let (node, library, service) = (&started.node, &started.library, &started.service);
    let scheduler = Scheduler::new(
        service.clone(),
        library.clone(),
        autostart(&config),
        Arc::new(SystemClock),
    );
    let metrics = octoflow_server::recorder::prometheus()
        .install_recorder()
        .ok();
    let state = AppState::new(
        service.clone(),
        library.clone(),
        AuthSettings {
            public_read: config.auth.public_read,
            token_ttl: config.auth.token_ttl.get(),
            admin_token: config.api_token.clone(),
            jwt: issuer_tokens(&config, &started.secrets)?,
        },
        metrics.clone(),
        config.limits.body_limits(),
        scheduler.clone(),
    )
    .with_public_url(config.public_url.as_deref());
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn({
        let service = service.clone();
        let shutdown = shutdown.clone();
        let enabled = config.workers > 0;
        async move {
            if enabled {
                service.run_workers(shutdown).await;
            }
        }
    });
    tokio::spawn(stop_on_signal("octoflow serve", shutdown.clone()));
    // With other nodes on the store: live views and cancels of runs across them.
    tokio::spawn({
        let (service, shutdown) = (started.service.clone(), shutdown.clone());
        async move { service.exchange_notices(shutdown).await }
    });
    // The schedules fire until the shutdown begins (`--no-scheduler`: another node fires
    // them; the API still changes them in the store).
    let scheduling = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if scheduling {
                scheduler.run(shutdown).await;
            }
        }
    });
    spawn_retention(&config, service, &shutdown);
    if let Some(metrics) = metrics {
        tokio::spawn(keep_metrics_bounded(metrics, shutdown.clone()));
    }
    // Folder watches and flow triggers; the watches stop with the shutdown, flow triggers
    // once the runs still running have ended.
    let triggers = octoflow_core::triggers::start(service, library, shutdown.clone());

    let ready_ms = begun.elapsed().as_millis();
    tracing::info!(address = %address, ready_ms, "Listening.");
    crate::output::note(&format!(
        "octoflow serve: listening on http://{address} (node {}, {} workers, ready in {ready_ms} ms)",
        node.id(),
        config.workers,
    ));
    let app = octoflow_server::router(state)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the HTTP server failed")?;
    workers.await.context("the workers ended abnormally")?;
    scheduling.await.context("the scheduler ended abnormally")?;
    triggers.stop().await;
    crate::output::note("octoflow serve: stopped; every run is recorded");
    Ok(())
}

/// Removes runs past `limits.run_retention` in the background (`0s`: kept forever).
fn spawn_retention(config: &Config, service: &Service, shutdown: &CancellationToken) {
    let keep = config.limits.run_retention.get();
    if !keep.is_zero() {
        let service = service.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { service.run_retention(keep, shutdown).await });
    }
}

/// How often the durations recorded for `/metrics` are folded into its histograms.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Folds the durations recorded for `/metrics` into its histograms now and then: until then
/// the exporter keeps every sample, so a node whose metrics nobody reads would otherwise
/// grow by a few dozen bytes with every request and run.
async fn keep_metrics_bounded(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

/// The check of tokens from an outside issuer (`auth.jwt`), its key from `secrets.yml`.
fn issuer_tokens(config: &Config, secrets: &Secrets) -> Result<Option<IssuerTokens>> {
    let Some(jwt) = &config.auth.jwt else {
        return Ok(None);
    };
    let key = match &jwt.key {
        Some(name) => Some(
            secrets
                .lookup(name)
                .map_err(|e| anyhow::anyhow!("`auth.jwt.key`: secret `{name}`: {e}"))?
                .1
                .expose()
                .as_str(),
        ),
        None => None,
    };
    let algorithms: Vec<&str> = jwt.algorithms.iter().map(String::as_str).collect();
    let mut check = JwtCheck::new(
        key,
        &algorithms,
        jwt.audience.as_deref(),
        jwt.issuer.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("`auth.jwt`: {e}"))?;
    if let Some(file) = &jwt.jwks_file {
        let path = config.data_dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `auth.jwt.jwks_file` `{}`", path.display()))?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a JSON Web Key Set", path.display()))?;
        check = check
            .with_jwks(&set)
            .map_err(|e| anyhow::anyhow!("`auth.jwt.jwks_file`: {e}"))?;
    }
    if !check.has_keys() {
        anyhow::bail!("`auth.jwt` needs `key` (a secret) or `jwks_file`");
    }
    Ok(Some(IssuerTokens {
        check,
        role_claim: jwt.role_claim.clone(),
    }))
}

/// An API without users or tokens lets anyone who reaches it run commands: such a server
/// listens on loopback only (docs/auth.md).
async fn refuse_open_api_beyond_loopback(
    config: &Config,
    store: &dyn Store,
    address: SocketAddr,
) -> Result<()> {
    if address.ip().is_loopback() || config.api_token.is_some() || config.auth.jwt.is_some() {
        return Ok(());
    }
    let configured = store
        .auth_configured()
        .await
        .context("cannot read whether users or tokens exist")?;
    if !configured {
        anyhow::bail!(
            "refusing to listen on `{address}` with no users or tokens: anyone reaching it could run commands; \
             create an admin first (`octoflow user add NAME --role admin` or `octoflow token create --role admin`), \
             set OCTOFLOW_API_TOKEN, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

/// Whose file schedules start (config `autostart`): each listed path is relative to the data
/// directory (`flows/poll.yml`, as in the spooler), made relative to the flows directory when
/// it lies inside it; absent means every flow's.
fn autostart(config: &Config) -> Autostart {
    let Some(items) = &config.autostart else {
        return Autostart::all();
    };
    let items = items
        .iter()
        .map(|item| {
            config
                .data_dir
                .join(item)
                .strip_prefix(&config.flows_dir)
                .map_or_else(|_| item.clone(), |p| p.display().to_string())
        })
        .collect();
    Autostart::only(items)
}

/// `http://` + the address, with a wildcard address replaced by the loopback one.
fn default_public_url(address: SocketAddr) -> String {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{address}")
}

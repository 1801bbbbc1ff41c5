//! What `serve` and `worker` start alike: this process as a node over its store, with the
//! flows directory hot-reloaded, the secrets read once, the service with its engine, the
//! hand-back of what stopped nodes left, and the signals that stop it.

use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::engine::{Engine, FlowCatalog};
use octoflow_core::library::{FlowLibrary, LibraryWatch};
use octoflow_core::secrets::Secrets;
use octoflow_core::service::{CallbackSigner, Service, ServiceConfig};
use octoflow_core::store::Store;
use tokio_util::sync::CancellationToken;

use super::run::{engine_config, load_secrets, prepare_data_dir};
use crate::config::Config;
use crate::node::Node;
use crate::{flows, store};

/// A node opened over its store, not yet running anything.
pub(super) struct NodeStart {
    pub(super) node: Node,
    pub(super) store: Arc<dyn Store>,
    pub(super) library: Arc<FlowLibrary>,
    /// Keeps the flows directory watched while the node lives.
    _watch: LibraryWatch,
    pub(super) secrets: Secrets,
    pub(super) service: Service,
}

impl NodeStart {
    /// Opens the store and the flows directory, reads the secrets once (Vault fetched,
    /// sealed values opened) and makes the service; its runs' callback URLs start with
    /// `public_url`.
    pub(super) async fn open(config: &Config, public_url: &str) -> Result<Self> {
        // A node runs for long: the loader's table of the binary's pointers, read once
        // before `main`, need not stay in its memory.
        let released = crate::relocations::release();
        tracing::debug!(bytes = released, "Gave back the relocation table's pages.");
        let files = prepare_data_dir(config)?;
        let node = Node::current()?;
        let store: Arc<dyn Store> = store::open(config).await?;
        let library = FlowLibrary::open(
            config.flows_dir.clone(),
            Arc::new(flows::registry(config)),
            config.templates_dir.clone(),
            files.clone(),
        )
        .with_context(|| {
            format!(
                "cannot read the flows directory `{}`",
                config.flows_dir.display()
            )
        })?;
        let watch = library.watch().with_context(|| {
            format!(
                "cannot watch the flows directory `{}`",
                config.flows_dir.display()
            )
        })?;
        let secrets = load_secrets(config)?;
        let key = store.node_key().await.context("cannot read the node key")?;
        let catalog: Arc<dyn FlowCatalog> = library.clone();
        let engine = Engine::new(store.clone(), engine_config(config, files, node.id()))
            .with_secrets(&secrets)
            .with_catalog(catalog.clone())
            .with_callbacks(CallbackSigner::new(&key, Some(public_url)));
        let service = Service::new(
            engine,
            catalog,
            ServiceConfig {
                workers: usize::try_from(config.workers).unwrap_or(usize::MAX),
                shutdown_grace: config.shutdown_grace,
                tracker_dir: config.tracker_dir.clone(),
            },
        );
        Ok(Self {
            node,
            store,
            library,
            _watch: watch,
            secrets,
            service,
        })
    }

    /// Readies the flow triggers' index, then hands back the runs a stopped node left
    /// running — after killing what its steps left running on this host, so that a
    /// re-queued run never races its predecessor's commands. Before this node claims,
    /// fires or watches anything.
    pub(super) async fn recover(&self, config: &Config, command: &str) -> Result<()> {
        octoflow_core::triggers::prepare(&self.service, &self.library);
        let (data_dir, judge) = (config.data_dir.clone(), self.node.clone());
        let killed = tokio::task::spawn_blocking(move || {
            octoflow_core::process_groups::kill_left_behind(&data_dir, |n| judge.is_alive(n))
        })
        .await
        .context("cannot look for processes a stopped node left")?;
        if killed > 0 {
            crate::output::note(&format!(
                "{command}: killed {killed} process groups a stopped node left running"
            ));
        }
        let recovered = self
            .service
            .recover(|n| self.node.is_alive(n))
            .await
            .context("cannot hand back the runs a stopped node left running")?;
        if recovered > 0 {
            crate::output::note(&format!(
                "{command}: {recovered} runs left running by a stopped node were handed back"
            ));
        }
        Ok(())
    }
}

/// The first SIGTERM or Ctrl-C starts the shutdown; a second one exits at once.
pub(super) async fn stop_on_signal(command: &'static str, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("Cannot listen for signals; only a kill will stop the node.");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    crate::output::note(&format!(
        "{command}: stopping; running runs may finish (signal again to exit at once)"
    ));
    shutdown.cancel();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    crate::output::note(&format!(
        "{command}: exiting at once; running runs will be handed back at the next start"
    ));
    std::process::exit(130);
}

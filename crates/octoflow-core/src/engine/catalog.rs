//! Where `flow` steps find the flows they run: by name, or by the spooler's path relative to
//! the flows directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::flow::{Flow, FlowLoader};
use crate::fs::FilesRoot;
use crate::step::Registry;

/// Looks flows up for `flow` and `flow_loop` steps.
#[async_trait]
pub trait FlowCatalog: Send + Sync {
    /// The flow with this name; `Err` says why there is none.
    async fn by_name(&self, name: &str) -> Result<Arc<Flow>, String>;
    /// The flow in this file, relative to the flows directory.
    async fn by_path(&self, path: &str) -> Result<Arc<Flow>, String>;
}

/// Flows read from a directory on demand, re-read when their file changes.
#[derive(Clone)]
pub struct DirCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    registry: Arc<Registry>,
    templates_dir: PathBuf,
    files: FilesRoot,
    cache: Mutex<HashMap<PathBuf, (SystemTime, Arc<Flow>)>>,
}

impl DirCatalog {
    /// A catalog of the `*.yml` / `*.yaml` files in `dir`.
    pub fn new(
        dir: PathBuf,
        registry: Arc<Registry>,
        templates_dir: PathBuf,
        files: FilesRoot,
    ) -> Self {
        let inner = Inner {
            dir,
            registry,
            templates_dir,
            files,
            cache: Mutex::new(HashMap::new()),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Runs a blocking lookup off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| format!("flow lookup failed: {e}"))?
    }
}

impl Inner {
    fn load(&self, path: &Path) -> Result<Arc<Flow>, String> {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("cannot read flow file `{}`: {e}", path.display()))?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, flow)) = cache.get(path)
            && *at == modified
        {
            return Ok(flow.clone());
        }
        let flow = FlowLoader::new(&self.registry)
            .with_templates_dir(self.templates_dir.clone())
            .with_files(self.files.clone())
            .load_file(path)
            .map_err(|p| format!("flow file `{}` is not valid:\n{p}", path.display()))?;
        let flow = Arc::new(flow);
        cache.insert(path.to_path_buf(), (modified, flow.clone()));
        Ok(flow)
    }

    fn by_name(&self, name: &str) -> Result<Arc<Flow>, String> {
        for file in [format!("{name}.yml"), format!("{name}.yaml")] {
            let path = self.dir.join(file);
            if path.is_file() {
                let flow = self.load(&path)?;
                if flow.name == name {
                    return Ok(flow);
                }
            }
        }
        // A flow whose `name:` differs from its file name: look through the directory.
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot read `{}`: {e}", self.dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yml" || e == "yaml")
                && let Ok(flow) = self.load(&path)
                && flow.name == name
            {
                return Ok(flow);
            }
        }
        Err(format!(
            "no flow named `{name}` in `{}`",
            self.dir.display()
        ))
    }
}

#[async_trait]
impl FlowCatalog for DirCatalog {
    async fn by_name(&self, name: &str) -> Result<Arc<Flow>, String> {
        if !crate::flow::is_valid_flow_name(name) {
            return Err(format!("invalid flow name `{name}`"));
        }
        let name = name.to_owned();
        self.blocking(move |inner| inner.by_name(&name)).await
    }

    async fn by_path(&self, path: &str) -> Result<Arc<Flow>, String> {
        let relative = PathBuf::from(path);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "flow path `{path}` must be relative to the flows directory, without `..`"
            ));
        }
        self.blocking(move |inner| inner.load(&inner.dir.join(relative)))
            .await
    }
}

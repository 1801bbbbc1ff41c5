//! The octoflow engine as a library.
//!
//! octoflow runs **flows**: YAML files of steps that move and transform data between files,
//! commands, HTTP APIs, databases and message streams, recording every run and step.
//! This crate holds everything that needs no driver and no server:
//!
//! - [`flow`]: from YAML text to a validated [`flow::Flow`], with every problem located;
//! - [`expr`]: templates ([`expr::Tpl`]), expressions and jq programs;
//! - [`step`]: the [`step::StepKind`] extension point and its [`step::Registry`];
//! - [`engine`]: the [`engine::Engine`] that runs one run and records it;
//! - [`library`]: the flows directory as a live, hot-reloaded set ([`library::FlowLibrary`]);
//! - [`store`]: the store traits that backends implement;
//! - [`service`]: a node: workers claiming queued runs, cancel, retry, callbacks;
//! - [`scheduler`]: schedules firing as runs, at most once per tick, with catch-up;
//! - [`triggers`]: folder watches and flow triggers, started with a node's service;
//! - [`fs`]: confined paths ([`fs::SafePath`]);
//! - [`secrets`]: `secrets.yml` and the [`secrets::Secret`] type;
//! - [`tracker`]: job tracker documents.
//!
//! # Embedding the engine
//!
//! Load a flow from text, run it with the built-in kinds on an in-memory store, and read the
//! run's tracker document:
//!
//! ```
//! use std::sync::Arc;
//!
//! use octoflow_core::engine::{Engine, EngineConfig, RunRequest};
//! use octoflow_core::flow::FlowLoader;
//! use octoflow_core::fs::FilesRoot;
//! use octoflow_core::step::Registry;
//! use octoflow_core::store::{MemoryStore, RunStatus, RunStore};
//! use octoflow_core::tracker::Tracker;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = r#"
//! name: create_asset
//! params:
//!   id: { type: integer, required: true }
//! steps:
//!   - name: manifest
//!     set_fact: { value: { id: "{{ params.id }}", files: 3 } }
//!   - name: summary
//!     jq: { expression: '"asset \(.manifest.id) with \(.manifest.files) files"' }
//! "#;
//! let mut registry = Registry::with_core_kinds();
//! octoflow_steps::register_builtin(&mut registry);
//! let flow = Arc::new(FlowLoader::new(&registry).load_str(yaml, "create_asset.yml", None)?);
//!
//! let data_dir = tempfile::tempdir()?;
//! let store = Arc::new(MemoryStore::new());
//! let engine = Engine::new(store.clone(), EngineConfig::new(FilesRoot::new(data_dir.path(), &[], false)?));
//! let params = serde_json::json!({ "id": 42 }).as_object().cloned().unwrap_or_default();
//! let run = engine.accept(&flow, RunRequest::new(params)).await?;
//! let run = engine.execute(flow.clone(), run, CancellationToken::new(), None).await?;
//! assert_eq!(run.status, RunStatus::Succeeded);
//! assert_eq!(run.data["summary"], "asset 42 with 3 files");
//!
//! let steps: Vec<String> = flow.steps.iter().map(|s| s.name.clone()).collect();
//! let tracker = Tracker::from_records(&run, &steps, &store.step_runs(&run.id).await?);
//! assert_eq!(tracker.job_management.job_status, "succeeded");
//! assert_eq!(tracker.job_management.current_step, 2);
//! # Ok(()) }
//! ```

pub mod engine;
pub mod error;
pub mod expr;
pub mod flow;
pub mod fs;
pub mod library;
pub mod process_groups;
pub mod scheduler;
pub mod secrets;
pub mod service;
pub mod step;
pub mod store;
pub mod tracker;
pub mod triggers;
pub mod yaml;

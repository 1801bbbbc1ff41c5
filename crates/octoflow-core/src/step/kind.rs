//! The trait a step kind implements.

use std::path::Path;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{StepCx, StepError};
use crate::flow::Problem;
use crate::fs::FilesRoot;

/// A kind of step (`exec`, `rest`, `jq`, …). Implement it, then add one line to a
/// [`Registry`](super::Registry).
///
/// The kind owns its settings and one attempt. Retries, timeouts, `when`, `ignore_errors`,
/// `result_key` and `jq_expression` belong to the engine, never to a kind.
pub trait StepKind: Send + Sync + 'static {
    /// The value of `type:` and the key of the settings block (`exec: { … }`).
    const NAME: &'static str;
    /// The settings block: `#[serde(deny_unknown_fields)]`, templated fields are `Tpl<T>`.
    /// Its JSON Schema is the kind's part of the flow-file schema (`octoflow schema flow`).
    type Settings: DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// Whether an attempt touches nothing outside its run: no process, no request, no file,
    /// no store write but the run's own records (a log line is one) — it only computes from
    /// what the run holds (`jq`, `set_fact`, …). A waited run of such steps alone may be
    /// recorded once, at its end (see `engine/recording.rs`). When in doubt, `false`.
    const SIDE_EFFECT_FREE: bool = false;

    /// Load-time checks beyond shape (a template file exists, a path is allowed, …).
    /// Problem paths are relative to the settings block (`path`, `command[0]`).
    fn check(&self, _settings: &Self::Settings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        Vec::new()
    }

    /// One attempt: render settings, do the work, return the result.
    fn run(
        &self,
        settings: &Self::Settings,
        cx: &mut StepCx<'_>,
    ) -> impl Future<Output = Result<Value, StepError>> + Send;
}

/// What load-time checks can see.
#[derive(Debug, Clone, Copy)]
pub struct CheckCx<'a> {
    /// The `templates/` directory, when known.
    pub templates_dir: Option<&'a Path>,
    /// The confined file roots, when known.
    pub files: Option<&'a FilesRoot>,
    /// Every kind, for kinds that hold inline steps (`switch`).
    pub registry: Option<&'a super::Registry>,
}

//! What one step attempt can see and use while it runs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{StepError, StepLog};
use crate::expr::{Scope, Tpl};
use crate::fs::FilesRoot;
use crate::process_groups::ProcessGroups;
use crate::secrets::Secrets;
use crate::store::RunId;

/// The run a step belongs to.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's id.
    pub id: RunId,
    /// The flow's name.
    pub flow: String,
    /// The run's workspace, `runs/<run-id>/` in the data directory.
    pub workdir: PathBuf,
    /// How many `flow` steps deep this run is (0 for a run started from outside).
    pub depth: u32,
}

/// Shared, per-node resources handed to every step.
#[derive(Debug, Clone)]
pub struct StepServices {
    /// Where files may be read and written.
    pub files: FilesRoot,
    /// The `templates/` directory.
    pub templates_dir: PathBuf,
    /// How long a cancelled process gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The environment handed to processes and templates (`env`): the node's, then the flow's.
    pub env: Arc<BTreeMap<String, String>>,
    /// Resolved secrets, for kinds that authenticate (`rest`'s `authentication`).
    pub secrets: Arc<Secrets>,
    /// Where kinds that start processes record the groups they lead.
    pub process_groups: ProcessGroups,
}

/// A request from a step to change the run's course.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// End the run `succeeded` with this message; later steps are skipped.
    Exit {
        /// Why the run ended.
        message: String,
    },
    /// Continue at this step (`__start__`, `__end__` or a step name).
    Goto {
        /// The target.
        target: String,
    },
    /// The flow's state changed: later steps see these values in `state`.
    State {
        /// The keys written.
        values: serde_json::Map<String, Value>,
    },
}

/// The context of one step attempt.
pub struct StepCx<'a> {
    pub(crate) step: &'a str,
    pub(crate) visit: u32,
    pub(crate) attempt: u32,
    pub(crate) scope: Scope,
    pub(crate) data_key: Option<&'a str>,
    pub(crate) run: &'a RunInfo,
    pub(crate) services: &'a StepServices,
    pub(crate) engine: &'a crate::engine::Engine,
    pub(crate) cancel: CancellationToken,
    pub(crate) log: StepLog,
    pub(crate) control: Option<Control>,
}

impl StepCx<'_> {
    /// The step's name.
    pub fn step_name(&self) -> &str {
        self.step
    }

    /// How many times this step has started in this run, from 1: a `goto` loop visits a step
    /// again; retries are attempts of the same visit. With the run id and the step name it
    /// names one visit, the same in every attempt (a `publish` step's message ids).
    pub fn visit(&self) -> u32 {
        self.visit
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run.
    pub fn run(&self) -> &RunInfo {
        self.run
    }

    /// Renders a templated setting; a failure names the setting.
    pub fn render<T>(&self, setting: &str, tpl: &Tpl<T>) -> Result<T, StepError>
    where
        T: serde::de::DeserializeOwned + Clone,
    {
        tpl.render(&self.scope).map_err(|e| StepError::Render {
            setting: setting.to_owned(),
            source: Box::new(e),
        })
    }

    /// What templates see.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The step's `data_key` as written, if any.
    pub fn data_key(&self) -> Option<&str> {
        self.data_key
    }

    /// The value at `data_key` (`"."` is the whole `data`); `None` without a `data_key`.
    /// A key that is not in `data` is an error naming it.
    pub fn input(&self) -> Result<Option<Value>, StepError> {
        let Some(key) = self.data_key else {
            return Ok(None);
        };
        lookup_data_key(&self.scope, key).map(|value| Some(value.into_owned()))
    }

    /// The input of a kind whose block may hold `data_key` too (the spooler's place for it):
    /// the block's key when given, else the step's ([`StepCx::input`]). Both given and
    /// different is an error.
    pub fn input_with(&self, block_key: Option<&str>) -> Result<Option<Value>, StepError> {
        Ok(self.input_seen_with(block_key)?.map(Cow::into_owned))
    }

    /// [`input_with`](Self::input_with) without a copy, for a kind that only reads it.
    pub fn input_seen_with(
        &self,
        block_key: Option<&str>,
    ) -> Result<Option<Cow<'_, Value>>, StepError> {
        let key = match (block_key, self.data_key) {
            (Some(block), Some(step)) if block != step => {
                return Err(StepError::fatal(format!(
                    "`data_key` is set twice, `{step}` on the step and `{block}` in its block; keep one"
                )));
            }
            (Some(key), _) | (None, Some(key)) => key,
            (None, None) => return Ok(None),
        };
        lookup_data_key(&self.scope, key).map(Some)
    }

    /// Cancelled when the run is cancelled or the attempt timed out.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The step's log.
    pub fn log(&self) -> &StepLog {
        &self.log
    }

    /// What masks the secrets: for a step that cuts text into pieces itself (the log
    /// masks each line it is given, but a secret cut in two is no longer whole in either).
    pub fn redactor(&self) -> &crate::secrets::Redactor {
        self.engine.redactor()
    }

    /// Where files may be touched.
    pub fn files(&self) -> &FilesRoot {
        &self.services.files
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.services.files.data_dir()
    }

    /// The `templates/` directory.
    pub fn templates_dir(&self) -> &Path {
        &self.services.templates_dir
    }

    /// The run's workspace directory.
    pub fn workdir(&self) -> &Path {
        &self.run.workdir
    }

    /// The environment for processes: the node's, then the flow's `env`.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.services.env
    }

    /// Resolved secrets (values are `Secret`s; the engine redacts them everywhere).
    pub fn secrets(&self) -> &Secrets {
        &self.services.secrets
    }

    /// How long a process gets between SIGTERM and SIGKILL.
    pub fn kill_grace(&self) -> Duration {
        self.services.kill_grace
    }

    /// Where a kind that starts processes records each group it leads, so that a node's
    /// death leaves none running.
    pub fn process_groups(&self) -> &ProcessGroups {
        &self.services.process_groups
    }

    /// Ends the run `succeeded` with `message` once this step is done.
    pub fn exit(&mut self, message: String) {
        self.control = Some(Control::Exit { message });
    }
}

/// The value of a `data_key` in a scope: `"."` for all of `data`, else a dotted path.
pub(crate) fn lookup_data_key<'a>(
    scope: &'a Scope,
    key: &str,
) -> Result<Cow<'a, Value>, StepError> {
    if key == "." {
        return Ok(Cow::Owned(Value::Object(scope.data().clone())));
    }
    let mut parts = key.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = scope
        .data()
        .get(first)
        .or_else(|| scope.name(first))
        .ok_or_else(|| StepError::fatal(format!("data_key `{key}` is not in data")))?;
    for part in parts {
        value = match value {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| StepError::fatal(format!("data_key `{key}` is not in data")))?;
    }
    Ok(Cow::Borrowed(value))
}

/// A value's JSON type in words, for messages: `a list`, `an object`, `null`, …
pub fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

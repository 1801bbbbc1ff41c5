//! Shapes of the flow-level blocks, mirroring the YAML; nothing checked beyond shape. The
//! serde ones are read by the checker; all of them make the flow-file schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::{Backoff, ConcurrencyPolicy, OnInterrupt};
use super::{Dur, ParamSpec, Schedule, Trigger};

/// `retry:` as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrySpec {
    pub attempts: u32,
    #[serde(default)]
    pub delay: Option<Dur>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
    #[serde(default)]
    pub max_delay: Option<Dur>,
}

/// `concurrency:` as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConcurrencySpec {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub policy: Option<ConcurrencyPolicy>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A flow file's fields as its JSON Schema describes them ([`super::flow_schema`]). The
/// checker reads each field with the type named here; [`super::FLOW_FIELDS`] is this list.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "octoflow flow file")]
#[expect(dead_code, reason = "only its shape is used: the flow-file schema")]
pub(crate) struct FlowFile {
    /// The flow's name (default: the file name without `.yml`): lowercase letters, digits,
    /// `_`, `.` and `-`, at most 64.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$"))]
    name: Option<String>,
    /// One line for lists.
    description: Option<String>,
    /// Declared inputs, by name.
    params: Option<BTreeMap<String, ParamSpec>>,
    /// One schedule.
    schedule: Option<Schedule>,
    /// The spooler's form: a cron expression (5 fields, or 6 with seconds first). Such a flow
    /// without `concurrency` never overlaps itself.
    cron: Option<String>,
    /// The spooler's form: an interval in seconds. Such a flow without `concurrency` never
    /// overlaps itself.
    every_seconds: Option<u64>,
    /// Schedules, webhooks, folder watches and flow chaining.
    triggers: Option<Vec<Trigger>>,
    /// How runs of this flow share a key.
    concurrency: Option<ConcurrencySpec>,
    /// Timeout of the whole run.
    timeout: Option<Dur>,
    /// Default retry of every step.
    retry: Option<RetrySpec>,
    /// Added to every `exec` step's environment.
    env: Option<BTreeMap<String, EnvValue>>,
    /// The steps, in order (unless `depends` says otherwise).
    steps: Vec<StepEntry>,
    /// Steps run after a failed run; `data.error` says why.
    on_failure: Option<Vec<StepEntry>>,
    /// Steps run after a cancelled run; `data.error.kind` is `cancelled`.
    on_cancel: Option<Vec<StepEntry>>,
    /// The spooler's `finally_step`: a step run after a failure, its `when` ignored.
    finally_step: Option<String>,
    /// How many steps may run at once (default 8).
    #[schemars(range(min = 1))]
    max_parallel: Option<usize>,
    /// How many `goto` jumps a run may make (default 1000).
    max_jumps: Option<u32>,
    /// What happens to a run whose node died.
    on_interrupt: Option<OnInterrupt>,
    /// Whether a re-queued run skips the steps that already succeeded.
    resume: Option<bool>,
}

/// A step's fields besides its kind block, as its JSON Schema describes them;
/// [`super::STEP_FIELDS`] is this list.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[expect(dead_code, reason = "only its shape is used: the flow-file schema")]
pub(crate) struct StepFields {
    /// The step's name, unique in the flow: letters, digits, `_`, `.` and `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    name: String,
    /// The step's kind, when its settings are not in a block named after it.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// What the step does.
    description: Option<String>,
    /// Run the step only when this expression (or every one of a list) is true.
    when: Option<When>,
    /// Where the result is kept in the run's data (default: the step's name).
    result_key: Option<String>,
    /// Keep only this key of the result.
    data_key: Option<String>,
    /// A jq program applied to the result before it is kept.
    jq_expression: Option<String>,
    /// Regexes: an error matching one counts as success.
    ignore_errors: Option<Vec<String>>,
    /// Retry of this step.
    retry: Option<RetrySpec>,
    /// Timeout of one attempt.
    timeout: Option<Dur>,
    /// Steps that must end first (the step then waits for them instead of the one before).
    depends: Option<Vec<String>>,
    /// The step to jump to when this one fails.
    on_error_goto: Option<String>,
    /// Keep the result out of every record, log and answer (later steps still see it).
    private: Option<bool>,
}

/// A value of `env:` — text, or a number or boolean written as text.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[expect(dead_code, reason = "only its shape is used: the flow-file schema")]
enum EnvValue {
    Text(String),
    Number(f64),
    Flag(bool),
}

/// `when:` — an expression, or a list of them that must all hold.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[expect(dead_code, reason = "only its shape is used: the flow-file schema")]
enum When {
    One(Condition),
    All(Vec<Condition>),
}

/// One condition of `when:`.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[expect(dead_code, reason = "only its shape is used: the flow-file schema")]
enum Condition {
    Expression(String),
    Constant(bool),
}

/// A step in a list of steps: its common fields and one kind's settings. The schema is
/// completed from the registry ([`super::flow_schema`]), so it stands here as a name only.
pub(crate) struct StepEntry;

impl JsonSchema for StepEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "object"})
    }
}

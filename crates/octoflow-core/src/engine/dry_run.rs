//! Dry runs: each step's settings rendered against the params, nothing run.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{AcceptError, Engine, RunRequest};
use crate::expr::{Scope, render_value};
use crate::flow::Flow;

/// What a run would do.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The flow.
    pub flow: String,
    /// The checked params, defaults filled in.
    pub params: Value,
    /// Each step, in order.
    pub steps: Vec<DryStep>,
}

/// One step of a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryStep {
    /// The step.
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its settings, rendered where the params allow (secrets redacted).
    pub settings: Value,
    /// Whether `when` would skip it (`null` when `when` needs results of earlier steps).
    pub skipped: Option<bool>,
    /// Why a setting or `when` could not be rendered yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Engine {
    /// Renders every step against the params without running anything or recording a run.
    pub fn dry_run(&self, flow: &Flow, request: &RunRequest) -> Result<DryRun, AcceptError> {
        let params = flow
            .params
            .validate(&request.params)
            .map_err(AcceptError::Params)?;
        let mut data = match &request.input {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        data.insert("__input__".to_owned(), request.input.clone());
        data.insert("__errors__".to_owned(), json!([]));
        data.insert("__job_id__".to_owned(), json!("dryrun"));
        let mut env = (*self.services.env).clone();
        env.extend(flow.env.clone());
        let scope = Scope::builder()
            .data(Value::Object(data))
            .name("params", Value::Object(params.clone()))
            .name("env", json!(env))
            .name("state", json!({}))
            .name("secrets", (*self.secrets).clone())
            .name("run", json!({"id": "dryrun", "flow": flow.name, "trigger": request.trigger.kind, "callback_url": null}))
            .build();
        let steps = flow
            .steps
            .iter()
            .map(|step| {
                let mut notes = Vec::new();
                let settings = render_settings(&step.settings, &scope, &mut notes);
                let mut skipped = Some(false);
                for expr in &step.when {
                    match expr.is_true(&scope) {
                        Ok(true) => {}
                        Ok(false) => skipped = Some(true),
                        Err(e) => {
                            notes.push(format!("`when` `{}` needs run data: {e}", expr.source()));
                            skipped = None;
                        }
                    }
                }
                DryStep {
                    name: step.name.clone(),
                    kind: step.kind.to_owned(),
                    settings: self.redactor.value(&settings),
                    skipped,
                    notes: notes
                        .iter()
                        .map(|n| self.redactor.text(n).into_owned())
                        .collect(),
                }
            })
            .collect();
        Ok(DryRun {
            flow: flow.name.clone(),
            params: self.redactor.value(&Value::Object(params)),
            steps,
        })
    }
}

/// Renders each setting on its own; one that needs run data stays as written, with a note.
fn render_settings(settings: &Value, scope: &Scope, notes: &mut Vec<String>) -> Value {
    match settings {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_one(k, v, scope, notes)))
                .collect(),
        ),
        other => render_one("", other, scope, notes),
    }
}

fn render_one(name: &str, value: &Value, scope: &Scope, notes: &mut Vec<String>) -> Value {
    match render_value(value, scope) {
        Ok(v) => v,
        Err((path, e)) => {
            notes.push(format!("`{name}{path}` needs run data: {e}"));
            value.clone()
        }
    }
}

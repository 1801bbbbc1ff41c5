//! The `state` kind: reads or writes the flow's state, which survives between runs
//! (cursors, last seen ids). Templates see it as `state`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::expr::Tpl;
use crate::flow::Problem;
use crate::step::{CheckCx, Control, StepCx, StepError, StepKind};

/// Reads or writes the flow's state.
#[derive(Debug, Default)]
pub struct State;

/// Settings of a `state` step: `get` (with an optional `default`) or `set`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// The key to read (template).
    #[serde(default)]
    get: Option<Tpl<String>>,
    /// The value when the key is not set (default `null`).
    #[serde(default)]
    default: Option<Tpl<Value>>,
    /// Keys to write, each a template; written together, all or none.
    #[serde(default)]
    set: Option<Map<String, Value>>,
}

impl StepKind for State {
    const NAME: &'static str = "state";
    type Settings = StateSettings;

    fn check(&self, settings: &StateSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (&settings.get, &settings.set) {
            (Some(_), Some(_)) => problems.push(Problem::at("", "give `get` or `set`, not both")),
            (None, None) => {
                problems.push(Problem::at("", "give `get: <key>` or `set: {key: value}`"));
            }
            (None, Some(_)) if settings.default.is_some() => {
                problems.push(Problem::at("default", "`default` goes with `get`"));
            }
            _ => {}
        }
        for (key, value) in settings.set.iter().flatten() {
            if let Err(e) = Tpl::<Value>::from_value(value.clone()) {
                problems.push(Problem::at(format!("set.{key}"), e));
            }
        }
        problems
    }

    async fn run(&self, settings: &StateSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let flow = cx.run().flow.clone();
        let store = cx.engine.store();
        if let Some(key) = &settings.get {
            let key = cx.render("get", key)?;
            let state = store
                .state(&flow)
                .await
                .map_err(|e| StepError::Internal(Box::new(e)))?;
            return match state.get(&key) {
                Some(value) => Ok(value.clone()),
                None => settings
                    .default
                    .as_ref()
                    .map_or(Ok(Value::Null), |d| cx.render("default", d)),
            };
        }
        let mut values = Map::new();
        for (key, value) in settings.set.iter().flatten() {
            let tpl = Tpl::<Value>::from_value(value.clone()).map_err(StepError::fatal)?;
            values.insert(key.clone(), cx.render(&format!("set.{key}"), &tpl)?);
        }
        // State outlives the run and is read by later ones: a secret is masked before it is
        // kept, as in `data`.
        let Value::Object(values) = cx.redactor().redact(Value::Object(values)) else {
            unreachable!("redaction keeps an object an object")
        };
        store
            .set_state(&flow, &values)
            .await
            .map_err(|e| StepError::Internal(Box::new(e)))?;
        cx.control = Some(Control::State {
            values: values.clone(),
        });
        Ok(json!(values))
    }
}

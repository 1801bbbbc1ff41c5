//! A run's `data`: what it starts with, and what of it may be written and shown.

use std::sync::Arc;

use chrono::Local;
use serde_json::{Map, Value, json};

use super::Execution;

impl Execution<'_> {
    /// The initial `data`: the input's keys, then the spooler's reserved keys. The input
    /// moves from the record into `data` (as `__input__`, its keys copied); the record
    /// takes its data back from there at the run's end.
    pub(super) fn initial_data(&mut self) -> Map<String, Value> {
        let input = std::mem::take(&mut self.run.data);
        let mut data = match &input {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        data.insert("__input__".to_owned(), input);
        data.insert("__errors__".to_owned(), Value::Array(Vec::new()));
        data.insert(
            "__timestamp__".to_owned(),
            json!(Local::now().format("%Y%m%d%H%M%S").to_string()),
        );
        data.insert("__job_id__".to_owned(), json!(self.run.id.to_string()));
        let path = self.flow.path.as_ref().map(|p| p.display().to_string());
        data.insert("__flow_path__".to_owned(), json!(path));
        if let Some(index) = self.loop_index {
            data.insert("__loop_index__".to_owned(), json!(index));
        }
        data
    }

    /// [`shown_data`](Self::shown_data) at the run's end: the data is taken, not copied.
    pub(super) fn take_shown_data(&mut self) -> Value {
        let mut data = Arc::unwrap_or_clone(std::mem::take(&mut self.data));
        data.retain(|k, _| !self.private_keys.contains(k));
        self.engine.redactor.redact(Value::Object(data))
    }

    /// `data` as it may be written and shown: redacted, without `private` results.
    pub(super) fn shown_data(&self) -> Value {
        let data = if self.private_keys.is_empty() {
            Value::Object((*self.data).clone())
        } else {
            let kept = self
                .data
                .iter()
                .filter(|(k, _)| !self.private_keys.contains(*k));
            Value::Object(kept.map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        self.engine.redactor.redact(data)
    }
}

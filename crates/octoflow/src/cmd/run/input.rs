//! What a run starts with: `-p` params read by their declared types and checked, and the
//! input of `--data-file`. Every problem is reported at once, before anything is recorded.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use octoflow_core::engine::AcceptError;
use octoflow_core::flow::{Flow, ParamError};
use serde_json::{Map, Value};

/// Reads `-p` values by their declared types and checks them, reporting every problem:
/// undeclared names, unreadable values, values out of bounds, missing required params.
pub(super) fn check_params(flow: &Flow, given: &[(String, String)]) -> Result<Map<String, Value>> {
    let mut params = Map::new();
    let mut errors = Vec::new();
    for pair in given {
        match flow.params.coerce_text(std::slice::from_ref(pair)) {
            Ok(one) => params.extend(one),
            Err(e) => errors.extend(e),
        }
    }
    if let Err(e) = flow.params.validate(&params) {
        errors.extend(e);
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(param_errors(&errors))
    }
}

/// Params that do not fit: one line each.
fn param_errors(errors: &[ParamError]) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow!(lines.join("\n"))
}

pub(super) fn accept_error(err: AcceptError) -> anyhow::Error {
    match err {
        AcceptError::Params(errors) => param_errors(&errors),
        other => anyhow::Error::new(other),
    }
}

/// The run's input from `--data-file` (JSON or YAML; `-` is stdin); `null` without one.
pub(super) fn read_input(path: Option<&Path>) -> Result<Value> {
    let Some(path) = path else {
        return Ok(Value::Null);
    };
    let name = path.display().to_string();
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the data file from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read data file `{name}`"))?
    };
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            anyhow!(
                "{name}:{}:{}: invalid JSON: {message}",
                e.line(),
                e.column()
            )
        });
    }
    octoflow_core::yaml::from_str::<Value>(&text).map_err(|e| {
        let place = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        let message = e.to_string();
        let first = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        let first = match first.split_once(": ") {
            Some((at, rest)) if at.starts_with("line ") => rest,
            _ => first,
        };
        anyhow!("{name}{place}: invalid YAML: {first}")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn input_files_report_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("in.json");
        std::fs::write(&json, "{\"a\": 1,}").unwrap();
        let err = read_input(Some(&json)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:1:9: invalid JSON: ", json.display())),
            "{err}"
        );
        let yaml = dir.path().join("in.yml");
        std::fs::write(&yaml, "a: 1\nb: [2\n").unwrap();
        let err = read_input(Some(&yaml)).unwrap_err().to_string();
        assert!(err.contains("in.yml:"), "{err}");
        std::fs::write(&yaml, "a: 1\nb: [2, 3]\n").unwrap();
        assert_eq!(
            read_input(Some(&yaml)).unwrap(),
            json!({"a": 1, "b": [2, 3]})
        );
        assert_eq!(read_input(None).unwrap(), Value::Null);
    }
}

//! `--dry-run` output: each step's rendered settings as YAML, or the dry run as JSON.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use octoflow_core::engine::DryRun;
use serde_json::Value;

/// A dry run for people (YAML-ish, one block per step) or as JSON.
pub(super) fn dry_run_text(dry: &DryRun, json: bool) -> Result<String> {
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(dry)?));
    }
    let mut out = format!(
        "dry run of flow `{}`; nothing runs, nothing is recorded\n",
        dry.flow
    );
    if dry.params.as_object().is_some_and(|p| !p.is_empty()) {
        let _ = writeln!(out, "params: {}", dry.params);
    }
    for step in &dry.steps {
        let verdict = match step.skipped {
            Some(true) => " — skipped by `when`",
            Some(false) => "",
            None => " — `when` depends on earlier results",
        };
        let _ = writeln!(out, "\nstep {} ({}){verdict}", step.name, step.kind);
        let settings = match &step.settings {
            Value::Object(m) if m.is_empty() => String::new(),
            Value::Null => String::new(),
            other => serde_saphyr::to_string(other).context("cannot show settings as YAML")?,
        };
        for line in settings.lines() {
            let _ = writeln!(out, "  {line}");
        }
        for note in &step.notes {
            let _ = writeln!(out, "  # {note}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dry_runs_read_as_yaml() {
        let dry = DryRun {
            flow: "f".to_owned(),
            params: json!({"env": "qas"}),
            steps: vec![octoflow_core::engine::DryStep {
                name: "a".to_owned(),
                kind: "exec".to_owned(),
                settings: json!({"command": ["echo", "qas"]}),
                skipped: Some(true),
                notes: vec!["x".to_owned()],
            }],
        };
        let text = dry_run_text(&dry, false).unwrap();
        assert_eq!(
            text,
            "dry run of flow `f`; nothing runs, nothing is recorded\nparams: {\"env\":\"qas\"}\n\n\
             step a (exec) — skipped by `when`\n  command:\n  - echo\n  - qas\n  # x\n"
        );
    }
}

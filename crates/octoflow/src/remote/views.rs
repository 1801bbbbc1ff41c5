//! The server's records as the client reads them: every field it does not need to print is
//! left out, and most may be missing, so a newer server's answers still read.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use octoflow_core::store::RunStatus;
use serde::Deserialize;
use serde_json::Value;

use super::table::{fields, time, took};

/// A run (SPEC §6): the serde form of `octoflow_core::store::Run`, with `steps` in
/// `GET /runs/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RunView {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) flow: String,
    #[serde(default)]
    pub(crate) flow_version: Option<String>,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) params: Value,
    #[serde(default)]
    pub(crate) trigger: Option<TriggerView>,
    #[serde(default)]
    pub(crate) concurrency_key: Option<String>,
    #[serde(default)]
    pub(crate) parent_run_id: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) error: Option<ErrorView>,
    #[serde(default)]
    pub(crate) node: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) progress: Option<ProgressView>,
    #[serde(default)]
    pub(crate) steps: Vec<StepView>,
}

/// `{kind, detail}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TriggerView {
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) detail: Value,
}

/// `{step, message}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorView {
    #[serde(default)]
    pub(crate) step: Option<String>,
    #[serde(default)]
    pub(crate) message: String,
}

/// `{current, total, message}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProgressView {
    #[serde(default)]
    pub(crate) current: Option<f64>,
    #[serde(default)]
    pub(crate) total: Option<f64>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// One step attempt.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StepView {
    #[serde(default)]
    pub(crate) step: String,
    #[serde(default)]
    pub(crate) attempt: u32,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// A flow of `GET /flows` or `GET /flows/{name}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FlowView {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) params: Value,
    #[serde(default)]
    pub(crate) triggers: Value,
    #[serde(default)]
    pub(crate) problems: Value,
    #[serde(default)]
    pub(crate) last_run: Option<Value>,
    #[serde(default)]
    pub(crate) next_fire: Option<DateTime<Utc>>,
}

/// A held concurrency key.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LockView {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) run_id: String,
    #[serde(default)]
    pub(crate) flow: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) node: Option<String>,
}

impl RunView {
    /// Its status, when it is one this client knows.
    pub(crate) fn status(&self) -> Option<RunStatus> {
        self.status.parse().ok()
    }

    /// What started it: `manual`, `schedule`, `webhook /hooks/x`.
    pub(crate) fn trigger(&self) -> String {
        let Some(trigger) = &self.trigger else {
            return String::new();
        };
        let detail = match &trigger.detail {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k} {s}"),
                    other => format!("{k} {other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        if detail.is_empty() {
            trigger.kind.clone()
        } else {
            format!("{} ({detail})", trigger.kind)
        }
    }

    /// Why it did not succeed: `step `fetch`: HTTP 500`.
    pub(crate) fn error_text(&self) -> String {
        match &self.error {
            Some(ErrorView {
                step: Some(step),
                message,
            }) => format!("step `{step}`: {message}"),
            Some(ErrorView { message, .. }) => message.clone(),
            None => String::new(),
        }
    }

    /// One row of `runs list`: ID, FLOW, STATUS, TRIGGER, CREATED, DURATION, ERROR.
    pub(crate) fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.flow.clone(),
            self.status.clone(),
            self.trigger
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default(),
            time(self.created_at),
            took(self.started_at, self.finished_at),
            self.error_text(),
        ]
    }

    /// `runs show`: the run's fields, then its steps.
    pub(crate) fn details(&self) -> String {
        let version = self
            .flow_version
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!(" (version {})", v.get(..12).unwrap_or(v)))
            .unwrap_or_default();
        let finished = match self.finished_at {
            Some(at) => format!(
                "{} (took {})",
                time(Some(at)),
                took(self.started_at, Some(at))
            ),
            None => String::new(),
        };
        let params = match &self.params {
            Value::Object(map) if map.is_empty() => String::new(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let progress = self
            .progress
            .as_ref()
            .map(|p| {
                let count = match (p.current, p.total) {
                    (Some(c), Some(t)) => format!("{c}/{t}"),
                    (Some(c), None) => c.to_string(),
                    _ => String::new(),
                };
                [count, p.message.clone().unwrap_or_default()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut out = fields(&[
            ("run", self.id.clone()),
            ("flow", format!("{}{version}", self.flow)),
            ("status", self.status.clone()),
            ("trigger", self.trigger()),
            ("params", params),
            ("parent run", self.parent_run_id.clone().unwrap_or_default()),
            (
                "concurrency key",
                self.concurrency_key.clone().unwrap_or_default(),
            ),
            ("created", time(self.created_at)),
            ("started", time(self.started_at)),
            ("finished", finished),
            ("node", self.node.clone().unwrap_or_default()),
            ("progress", progress),
            ("message", self.message.clone().unwrap_or_default()),
            ("error", self.error_text()),
        ]);
        if !self.steps.is_empty() {
            let mut table = super::Table::new(&["STEP", "ATTEMPT", "STATUS", "DURATION", "ERROR"]);
            for step in &self.steps {
                table.row(vec![
                    step.step.clone(),
                    step.attempt.to_string(),
                    step.status.clone(),
                    took(step.started_at, step.finished_at),
                    step.error.clone().unwrap_or_default(),
                ]);
            }
            out.push('\n');
            out.push_str(&table.render(true));
        }
        out
    }
}

impl FlowView {
    /// The kinds of its triggers: `schedule, webhook`.
    pub(crate) fn trigger_kinds(&self) -> String {
        let Value::Array(list) = &self.triggers else {
            return String::new();
        };
        list.iter()
            .filter_map(|t| match t {
                Value::String(s) => Some(s.clone()),
                Value::Object(map) => match map.get("kind").and_then(Value::as_str) {
                    Some(kind) => Some(kind.to_owned()),
                    None if map.len() == 1 => map.keys().next().cloned(),
                    None => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Its triggers one a line, as the server sums them up (`watch inbox for *.pdf (…)`);
    /// the kind alone from a server that gives no summary.
    pub(crate) fn triggers_text(&self) -> String {
        let Value::Array(list) = &self.triggers else {
            return String::new();
        };
        list.iter()
            .filter_map(|t| match t.get("summary").and_then(Value::as_str) {
                Some(summary) => Some(summary.to_owned()),
                None => t.get("kind").and_then(Value::as_str).map(str::to_owned),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many problems it has.
    pub(crate) fn problem_count(&self) -> usize {
        match &self.problems {
            Value::Array(list) => list.len(),
            _ => 0,
        }
    }

    /// Its last run: `failed 2026-11-22 10:00:03`.
    pub(crate) fn last_run(&self) -> String {
        let Some(run) = &self.last_run else {
            return String::new();
        };
        let status = run
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let at = ["finished_at", "started_at", "created_at"]
            .iter()
            .find_map(|k| run.get(*k).and_then(Value::as_str))
            .and_then(|t| t.parse::<DateTime<Utc>>().ok());
        format!("{status} {}", time(at)).trim().to_owned()
    }

    /// One row of `flows list`: NAME, TRIGGERS, LAST RUN, NEXT RUN, DESCRIPTION.
    pub(crate) fn row(&self) -> Vec<String> {
        let description = self.description.clone().unwrap_or_default();
        let description = match self.problem_count() {
            0 => description,
            1 => format!("(invalid: 1 problem) {description}"),
            n => format!("(invalid: {n} problems) {description}"),
        };
        vec![
            self.name.clone(),
            self.trigger_kinds(),
            self.last_run(),
            time(self.next_fire),
            description.trim().to_owned(),
        ]
    }

    /// The declared params: `batch: integer = 50`, `env: string (required)`, one a line.
    pub(crate) fn params_text(&self) -> String {
        let one = |name: &str, spec: &Value| {
            let kind = spec.get("type").and_then(Value::as_str).unwrap_or("string");
            let mut line = format!("{name}: {kind}");
            if let Some(default) = spec.get("default").filter(|d| !d.is_null()) {
                let _ = write!(line, " = {default}");
            } else if spec.get("required").and_then(Value::as_bool) == Some(true) {
                line.push_str(" (required)");
            }
            if let Some(text) = spec.get("description").and_then(Value::as_str) {
                let _ = write!(line, "  {text}");
            }
            line
        };
        let lines: Vec<String> = match &self.params {
            Value::Object(map) => map.iter().map(|(n, s)| one(n, s)).collect(),
            Value::Array(list) => list
                .iter()
                .map(|s| one(s.get("name").and_then(Value::as_str).unwrap_or("?"), s))
                .collect(),
            _ => Vec::new(),
        };
        lines.join("\n")
    }

    /// `flows show`: its fields, problems and source.
    pub(crate) fn details(&self) -> String {
        let problems = match &self.problems {
            Value::Array(list) => list
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => super::problems(&serde_json::json!({ "problems": [other] })).concat(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        let mut out = fields(&[
            ("flow", self.name.clone()),
            ("description", self.description.clone().unwrap_or_default()),
            ("path", self.path.clone().unwrap_or_default()),
            ("version", self.version.clone().unwrap_or_default()),
            ("params", self.params_text()),
            ("triggers", self.triggers_text()),
            ("last run", self.last_run()),
            ("next run", time(self.next_fire)),
            ("problems", problems),
        ]);
        if let Some(source) = self.source.as_deref().filter(|s| !s.is_empty()) {
            out.push('\n');
            out.push_str(source);
            if !source.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

impl LockView {
    /// One row of `locks list`: KEY, RUN, FLOW, STATUS, SINCE, NODE.
    pub(crate) fn row(&self) -> Vec<String> {
        vec![
            self.key.clone(),
            self.run_id.clone(),
            self.flow.clone(),
            self.status.clone(),
            time(self.since),
            self.node.clone().unwrap_or_default(),
        ]
    }
}

/// A log line of a followed stream as printed: a `log` record
/// (`{ts, step, attempt, stream, line}`) as the server's text log writes it,
/// `2026-01-31T12:00:00.123Z stdout fetch: hello`; any other `data:` text as it is.
pub(crate) fn log_line(data: &str) -> String {
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(data) else {
        return data.to_owned();
    };
    let Some(line) = record.get("line").and_then(Value::as_str) else {
        return data.to_owned();
    };
    let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut head: Vec<String> = Vec::new();
    if let Ok(ts) = text("ts").parse::<DateTime<Utc>>() {
        head.push(ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    head.extend(
        [text("stream"), text("step")]
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    match (head.is_empty(), text("step").is_empty()) {
        (true, _) => line.to_owned(),
        (false, false) => format!("{}: {line}", head.join(" ")),
        (false, true) => format!("{} {line}", head.join(" ")),
    }
}

/// The run status an `end` event carries: `succeeded`, or `{"status": "succeeded", …}`.
pub(crate) fn status_of(data: &str) -> Option<RunStatus> {
    let data = data.trim();
    if let Ok(status) = data.parse() {
        return Some(status);
    }
    let value: Value = serde_json::from_str(data).ok()?;
    let status = match &value {
        Value::String(s) => s.as_str(),
        other => other.get("status")?.as_str()?,
    };
    status.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run() -> RunView {
        serde_json::from_value(json!({
            "id": "r1", "flow": "sync", "flow_version": "0123456789abcdef", "status": "failed",
            "params": {"batch": 5}, "trigger": {"kind": "manual", "detail": {"via": "cli"}},
            "concurrency_key": null, "parent_run_id": null,
            "created_at": "2026-11-22T10:00:00Z", "started_at": "2026-11-22T10:00:01Z",
            "finished_at": "2026-11-22T10:00:03.5Z",
            "error": {"step": "fetch", "message": "HTTP 500"}, "data": {}, "node": "h:1",
            "message": null, "progress": null,
            "steps": [{"run_id": "r1", "step": "fetch", "attempt": 1, "status": "failed",
                       "started_at": "2026-11-22T10:00:01Z", "finished_at": "2026-11-22T10:00:02Z",
                       "result": null, "error": "HTTP 500"}]
        }))
        .unwrap()
    }

    #[test]
    fn runs_read_as_rows_and_details() {
        let run = run();
        assert_eq!(
            run.row(),
            [
                "r1",
                "sync",
                "failed",
                "manual",
                "2026-11-22 10:00:00",
                "2.5s",
                "step `fetch`: HTTP 500"
            ]
        );
        assert_eq!(run.status(), Some(RunStatus::Failed));
        assert_eq!(
            run.details(),
            "\
run       r1
flow      sync (version 0123456789ab)
status    failed
trigger   manual (via cli)
params    {\"batch\":5}
created   2026-11-22 10:00:00
started   2026-11-22 10:00:01
finished  2026-11-22 10:00:03 (took 2.5s)
node      h:1
error     step `fetch`: HTTP 500

STEP   ATTEMPT  STATUS  DURATION  ERROR
fetch  1        failed  1.0s      HTTP 500
"
        );
        let minimal: RunView = serde_json::from_value(json!({"id": "r2"})).unwrap();
        assert_eq!(minimal.status(), None);
        assert_eq!(minimal.details(), "run  r2\n");
    }

    #[test]
    fn flows_read_as_rows_and_details() {
        let flow: FlowView = serde_json::from_value(json!({
            "name": "sync", "description": "Copies things",
            "params": {"batch": {"type": "integer", "default": 50}, "env": {"type": "string", "required": true}},
            "triggers": [{"schedule": {"cron": "* * * * *"}}, {"kind": "webhook"}],
            "problems": [], "last_run": {"id": "r1", "status": "succeeded", "finished_at": "2026-11-22T10:00:03Z"},
            "next_fire": "2026-11-22T11:00:00Z",
            "source": "name: sync\nsteps: []"
        }))
        .unwrap();
        assert_eq!(
            flow.row(),
            [
                "sync",
                "schedule, webhook",
                "succeeded 2026-11-22 10:00:03",
                "2026-11-22 11:00:00",
                "Copies things"
            ]
        );
        let details = flow.details();
        assert!(
            details.contains(
                "params       batch: integer = 50\n             env: string (required)\n"
            ),
            "{details}"
        );
        assert!(details.ends_with("\nname: sync\nsteps: []\n"), "{details}");
        let broken: FlowView =
            serde_json::from_value(json!({"name": "b", "problems": ["x", "y"]})).unwrap();
        assert_eq!(broken.row()[4], "(invalid: 2 problems)");
    }

    #[test]
    fn log_lines_and_end_statuses() {
        assert_eq!(log_line("plain text"), "plain text");
        assert_eq!(
            log_line(
                r#"{"ts": "2026-11-22T10:00:01.25Z", "step": "a", "attempt": 1, "stream": "stdout", "line": "hi"}"#
            ),
            "2026-11-22T10:00:01.250Z stdout a: hi"
        );
        assert_eq!(log_line(r#"{"line": "bare"}"#), "bare");
        assert_eq!(log_line(r#"{"other": 1}"#), r#"{"other": 1}"#);
        assert_eq!(status_of("succeeded"), Some(RunStatus::Succeeded));
        assert_eq!(
            status_of(r#"{"status": "timed_out"}"#),
            Some(RunStatus::TimedOut)
        );
        assert_eq!(status_of(r#""failed""#), Some(RunStatus::Failed));
        assert_eq!(status_of("{}"), None);
    }
}

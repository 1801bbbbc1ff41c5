//! The `exec` block, its load-time checks, and rendering it into one [`Invocation`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;

use super::process::Invocation;

/// The interpreter for `script` when `shell` is not set: `sh -eu -c <script>`.
const DEFAULT_SHELL: [&str; 3] = ["sh", "-eu", "-c"];

/// The settings of an `exec` step. Exactly one of `command` and `script` is set.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecSettings {
    /// The program and its arguments, one list item each; the first item is the program,
    /// looked up in the `PATH` of `env` when it holds no `/`. Every item is a template; a
    /// value that is not text (`{{ params.batch }}`) is passed as its JSON text. No shell
    /// is involved.
    pub(crate) command: Option<Tpl<Vec<Text>>>,
    /// A script (template) run by `shell`, given as its last argument.
    pub(crate) script: Option<Tpl<Text>>,
    /// The interpreter for `script`. Default `[sh, -eu, -c]`: stop at the first failing
    /// command or undefined variable.
    pub(crate) shell: Option<Tpl<Vec<Text>>>,
    /// The working directory (template), relative to the data directory; a directory outside
    /// the data directory and `files.roots` is refused. It must exist. Default: the data
    /// directory.
    pub(crate) cwd: Option<Tpl<Text>>,
    /// Variables (templates) added over the node's environment and the flow's `env`. The
    /// process gets exactly that environment: what templates see as `env`, plus these.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, Tpl<Text>>,
    /// Text (template) written to the process's standard input, which is then closed. With
    /// a `data_key`, the value found there is written instead (text as it is, any other
    /// value as JSON). Default: no input (`/dev/null`).
    pub(crate) stdin: Option<Tpl<Text>>,
    /// How long the process may run; then its process group is stopped as on cancel and the
    /// step ends `timed_out`. Default: no limit of its own (the step's `timeout` still holds).
    pub(crate) timeout: Option<Tpl<Dur>>,
    /// The exit codes that count as success. Default `[0]`.
    #[serde(default = "default_success_codes")]
    pub(crate) success_codes: Vec<i32>,
    /// How to read standard output into the result's `stdout`: `json` (one JSON document;
    /// anything else fails the step), `lines` (a list of lines, without the empty one after
    /// the last line break) or `text` (the text without its final line break). Default: the
    /// text exactly as written.
    pub(crate) parse: Option<Parse>,
    /// How long the process group gets between SIGTERM and SIGKILL on cancel or timeout.
    /// Default: the node's `kill_grace` (5s).
    pub(crate) kill_grace: Option<Tpl<Dur>>,
}

fn default_success_codes() -> Vec<i32> {
    vec![0]
}

/// How standard output becomes the result's `stdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Parse {
    /// One JSON document.
    Json,
    /// A list of lines.
    Lines,
    /// The text without its final line break.
    Text,
}

/// A rendered text setting: a string as it is, any other value as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl schemars::JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Text; a number or boolean is taken as its text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Text(match Value::deserialize(deserializer)? {
            Value::String(s) => s,
            other => other.to_string(),
        }))
    }
}

fn texts(items: Vec<Text>) -> Vec<String> {
    items.into_iter().map(|t| t.0).collect()
}

impl ExecSettings {
    /// Problems that need no run: the shape of `command`/`script`, a literal `cwd`, `env` names.
    pub(super) fn problems(&self, cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (&self.command, &self.script) {
            (None, None) => problems.push(Problem::at(
                "",
                "an `exec` step needs `command` (a list: the program, then its arguments) or `script`",
            )),
            (Some(_), Some(_)) => {
                problems.push(Problem::at("script", "`command` and `script` are both set; keep one"));
            }
            _ => {}
        }
        if self.shell.is_some() && self.script.is_none() {
            problems.push(Problem::at("shell", "`shell` is only used with `script`"));
        }
        for (setting, list) in [("command", &self.command), ("shell", &self.shell)] {
            let literal = list.as_ref().and_then(Tpl::as_literal);
            if literal.is_some_and(|items| items.first().is_none_or(|p| p.0.is_empty())) {
                let message = format!("the first item of `{setting}` must be the program to run");
                problems.push(Problem::at(setting, message));
            }
        }
        if let (Some(Text(cwd)), Some(files)) =
            (self.cwd.as_ref().and_then(Tpl::as_literal), cx.files)
            && let Err(e) = files.resolve(cwd)
        {
            problems.push(Problem::at("cwd", chain(&e)));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(Problem::at(
                    format!("env.{name}"),
                    format!("invalid variable name `{name}`; it must not be empty or hold `=`"),
                ));
            }
        }
        if self.success_codes.is_empty() {
            problems.push(Problem::at(
                "success_codes",
                "`success_codes` is empty; no exit code could succeed",
            ));
        }
        problems
    }

    /// Renders every setting for one attempt.
    pub(super) fn render(&self, cx: &StepCx<'_>) -> Result<Invocation, StepError> {
        let mut argv = match (&self.command, &self.script) {
            (Some(command), _) => texts(cx.render("exec.command", command)?),
            (None, Some(script)) => {
                let mut argv = match &self.shell {
                    Some(shell) => texts(cx.render("exec.shell", shell)?),
                    None => DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect(),
                };
                argv.push(cx.render("exec.script", script)?.0);
                argv
            }
            (None, None) => Vec::new(),
        };
        if argv.first().is_none_or(String::is_empty) {
            let setting = if self.command.is_some() {
                "command"
            } else {
                "shell"
            };
            return Err(StepError::fatal(format!(
                "the first item of `{setting}` (the program to run) is empty after rendering"
            )));
        }
        let program = argv.remove(0);

        let cwd = match &self.cwd {
            None => cx.data_dir().to_path_buf(),
            Some(cwd) => {
                let Text(cwd) = cx.render("exec.cwd", cwd)?;
                let safe = cx
                    .files()
                    .resolve(&cwd)
                    .map_err(|e| StepError::fatal(format!("cannot use `cwd`: {}", chain(&e))))?;
                PathBuf::from(safe.as_path())
            }
        };

        let mut env = cx.env().clone();
        for (name, value) in &self.env {
            env.insert(
                name.clone(),
                cx.render(&format!("exec.env.{name}"), value)?.0,
            );
        }

        let stdin = match (cx.input()?, &self.stdin) {
            (Some(Value::String(text)), _) => Some(text),
            (Some(value), _) => Some(value.to_string()),
            (None, Some(stdin)) => Some(cx.render("exec.stdin", stdin)?.0),
            (None, None) => None,
        };

        let timeout = self
            .timeout
            .as_ref()
            .map(|t| cx.render("exec.timeout", t))
            .transpose()?;
        let kill_grace = match &self.kill_grace {
            Some(grace) => cx.render("exec.kill_grace", grace)?.get(),
            None => cx.kill_grace(),
        };
        Ok(Invocation {
            program,
            args: argv,
            cwd,
            env,
            stdin: stdin.map(String::into_bytes),
            timeout: timeout.map(Dur::get),
            kill_grace,
        })
    }
}

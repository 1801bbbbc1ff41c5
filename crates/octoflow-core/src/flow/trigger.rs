//! Triggers as declared in a flow (SPEC §7): schedules, webhooks, folder watches and flow
//! chaining. Parsed and checked here; firing them belongs to the server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Dur;
use crate::store::RunStatus;

/// Paths a root-mounted webhook may never take.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/api", "/hooks", "/ui", "/static", "/healthz", "/readyz", "/metrics",
];

/// A schedule: a cron expression in a time zone, or a fixed interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<u64>,
    /// IANA time zone of the cron expression (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// What to fire after downtime.
    #[serde(default)]
    pub catchup: Catchup,
    /// Params of the runs it starts.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

/// Which missed ticks fire after downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// None of them.
    None,
    /// The last one only.
    #[default]
    Last,
    /// Every one.
    All,
}

impl Schedule {
    /// Checks the schedule; messages are relative to the schedule block.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match (&self.cron, self.every_seconds) {
            (Some(_), Some(_)) => problems.push((
                String::new(),
                "give either `cron` or `every_seconds`, not both".to_owned(),
            )),
            (None, None) => {
                problems.push((String::new(), "give `cron` or `every_seconds`".to_owned()));
            }
            (Some(cron), None) => {
                if let Err(message) = check_cron(cron) {
                    problems.push(("cron".to_owned(), message));
                }
            }
            (None, Some(0)) => {
                problems.push(("every_seconds".to_owned(), "must be at least 1".to_owned()));
            }
            (None, Some(_)) => {}
        }
        if let Some(tz) = &self.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            problems.push(("timezone".to_owned(), format!("unknown time zone `{tz}`")));
        }
        problems
    }
}

fn check_cron(cron: &str) -> Result<(), String> {
    let fields = cron.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "invalid cron expression `{cron}`: expected 5 fields (or 6 with seconds), found {fields}"
        ));
    }
    croner::parser::CronParser::new()
        .parse(cron)
        .map(|_| ())
        .map_err(|e| {
            let reason = e.to_string();
            let reason = reason.trim_end_matches('.');
            let reason = reason.split_once(": ").map_or(reason, |(_, r)| r);
            let mut chars = reason.chars();
            let reason = match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
                None => String::new(),
            };
            format!("invalid cron expression `{cron}`: {reason}")
        })
}

/// A trigger in `triggers:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A schedule.
    Schedule(Schedule),
    /// An HTTP route.
    Webhook(Box<Webhook>),
    /// A folder watch.
    Watch(WatchTrigger),
    /// After another flow's run.
    Flow(FlowTrigger),
}

/// A webhook trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `/hooks/<path>`, or a root path when it starts with `/`; `{name}` segments.
    pub path: String,
    /// Allowed methods (default POST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Who may call it.
    #[serde(default)]
    pub auth: WebhookAuth,
    /// Answer when the run ends.
    #[serde(default)]
    pub wait: bool,
    /// How long to wait before answering 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Dur>,
    /// Answer the rendered steps without running.
    #[serde(default)]
    pub dryrun: bool,
    /// Shape of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<WebhookResponse>,
    /// Fixed params added to the request's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

/// How a webhook checks its caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookAuth {
    /// Anyone.
    #[default]
    None,
    /// An octoflow token.
    Bearer,
    /// HTTP basic auth against a `credential` secret.
    Basic {
        /// The secret's name.
        secret: String,
    },
    /// A shared token in a header or the query.
    Token {
        /// The secret's name.
        secret: String,
    },
    /// An HMAC signature of the body.
    Hmac {
        /// The secret's name.
        secret: String,
        /// The header holding the signature.
        header: String,
    },
    /// A JWT from another issuer.
    Jwt {
        /// The secret's name (HS256 key or RS256 public key).
        secret: String,
        /// Required `aud`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// `HS256` or `RS256`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        algorithm: Option<String>,
    },
}

/// A templated answer of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookResponse {
    /// Status code (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Headers (templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body (template tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl Webhook {
    /// Checks the path and methods; messages are relative to the webhook block.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let path = self.path.trim();
        if path.is_empty() || path == "/" {
            problems.push(("path".to_owned(), "a webhook needs a path".to_owned()));
        }
        if path.contains("..") || path.contains("//") {
            problems.push(("path".to_owned(), format!("invalid webhook path `{path}`")));
        }
        if path.starts_with('/')
            && let Some(prefix) = RESERVED_PREFIXES
                .iter()
                .find(|p| path == **p || path.starts_with(&format!("{p}/")))
        {
            problems.push((
                "path".to_owned(),
                format!("webhook path `{path}` is under the reserved prefix `{prefix}`"),
            ));
        }
        for (i, method) in self.methods.iter().enumerate() {
            let known = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
            if !known.contains(&method.to_ascii_uppercase().as_str()) {
                problems.push((
                    format!("methods[{i}]"),
                    format!("unknown HTTP method `{method}`"),
                ));
            }
        }
        problems
    }
}

/// A folder watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchTrigger {
    /// The folder.
    pub path: String,
    /// Glob of file names (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// How long a file must stay unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Dur>,
    /// Watch subfolders too.
    #[serde(default)]
    pub recursive: bool,
    /// Handle files already there when the watch starts (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<bool>,
}

/// Runs after another flow's run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTrigger {
    /// The upstream flow.
    pub name: String,
    /// The statuses that start this flow (default `[succeeded]`).
    #[serde(default = "default_statuses")]
    pub status: Vec<RunStatus>,
}

fn default_statuses() -> Vec<RunStatus> {
    vec![RunStatus::Succeeded]
}

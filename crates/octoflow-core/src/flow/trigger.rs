//! Triggers as declared in a flow (SPEC §7): schedules, webhooks, folder watches and flow
//! chaining. Parsed and checked here; firing them belongs to the server (webhooks), to
//! [`crate::scheduler`] (schedules) and to [`crate::triggers`] (watches, flow triggers).
//! Watches and flow triggers are declared in `watch_trigger.rs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Dur;
pub use super::watch_trigger::{FlowTrigger, WatchTrigger};

/// Paths a root-mounted webhook may never take.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/api", "/hooks", "/ui", "/static", "/healthz", "/readyz", "/metrics",
];

/// A schedule: a cron expression in a time zone, or a fixed interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
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
    /// Its cadence as one string (`cron:<expr>@<zone>` or `every:<seconds>`): what a file
    /// schedule's removal remembers, so that another cadence under the same key is a new
    /// schedule.
    pub fn cadence_key(&self) -> String {
        match (&self.cron, self.every_seconds) {
            (Some(cron), _) => format!("cron:{cron}@{}", self.timezone.as_deref().unwrap_or("UTC")),
            (None, Some(seconds)) => format!("every:{seconds}"),
            (None, None) => String::new(),
        }
    }

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
            (None, Some(n)) if n > super::duration::MAX_DURATION.as_secs() => {
                problems.push((
                    "every_seconds".to_owned(),
                    "must be at most 3153600000 (100 years)".to_owned(),
                ));
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

impl Schedule {
    /// One line for people: `cron 0 3 * * * (Europe/Brussels)` or `every 30s`.
    pub fn summary(&self) -> String {
        match (&self.cron, self.every_seconds) {
            (Some(cron), _) => format!(
                "cron {cron} ({})",
                self.timezone.as_deref().unwrap_or("UTC")
            ),
            (None, Some(n)) => format!(
                "every {}",
                super::format_duration(std::time::Duration::from_secs(n))
            ),
            (None, None) => "schedule".to_owned(),
        }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl Trigger {
    /// One line for people, as `octoflow flows show` prints it.
    pub fn summary(&self) -> String {
        match self {
            Self::Schedule(s) => s.summary(),
            Self::Webhook(w) => {
                let auth = w.auth.kind();
                let mut line = format!(
                    "webhook {} {} (auth {auth}",
                    w.allowed_methods().join("|"),
                    w.served_path()
                );
                if w.wait {
                    line.push_str(", wait");
                }
                if w.dryrun {
                    line.push_str(", dry run");
                }
                line.push(')');
                line
            }
            Self::Watch(w) => w.summary(),
            Self::Flow(f) => f.summary(),
        }
    }
}

/// A webhook trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl WebhookAuth {
    /// The mode's name as written in a flow (`none`, `basic`, `bearer`, …), without secrets.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::Basic { .. } => "basic",
            Self::Token { .. } => "token",
            Self::Hmac { .. } => "hmac",
            Self::Jwt { .. } => "jwt",
        }
    }
}

impl Webhook {
    /// The path it is served at: `/hooks/<path>`, or `path` itself when it starts with `/`.
    pub fn served_path(&self) -> String {
        let path = self.path.trim();
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/hooks/{path}")
        }
    }

    /// The names of its `{name}` path segments, in order.
    pub fn path_params(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    /// The methods it answers, upper-case (default `POST`).
    pub fn allowed_methods(&self) -> Vec<String> {
        if self.methods.is_empty() {
            return vec!["POST".to_owned()];
        }
        self.methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect()
    }

    /// Checks that each `{name}` segment is a declared param.
    pub fn check_params(&self, params: &super::Params) -> Vec<(String, String)> {
        self.path_params()
            .into_iter()
            .filter(|name| !name.is_empty() && !params.declares(name))
            .map(|name| {
                (
                    "path".to_owned(),
                    format!(
                        "path segment `{{{name}}}` is not a declared param; declare `params.{name}`"
                    ),
                )
            })
            .collect()
    }

    /// Checks the path, methods, auth, waiting and response templates; messages are
    /// relative to the webhook block.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = self.check_path();
        problems.extend(self.check_options());
        problems
    }

    fn check_options(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.wait && self.dryrun {
            problems.push((
                "dryrun".to_owned(),
                "a webhook either waits for its run or dry-runs; not both".to_owned(),
            ));
        }
        if self.wait_timeout.is_some() && !self.wait {
            problems.push((
                "wait_timeout".to_owned(),
                "`wait_timeout` needs `wait: true`".to_owned(),
            ));
        }
        if let WebhookAuth::Jwt {
            algorithm: Some(algorithm),
            ..
        } = &self.auth
            && !["HS256", "RS256"].contains(&algorithm.to_ascii_uppercase().as_str())
        {
            problems.push((
                "auth.jwt.algorithm".to_owned(),
                format!("unsupported JWT algorithm `{algorithm}`; use HS256 or RS256"),
            ));
        }
        if let Some(response) = &self.response {
            let mut templates: Vec<(String, Value)> = Vec::new();
            if let Some(status) = &response.status {
                templates.push(("response.status".to_owned(), status.clone()));
            }
            for (name, value) in &response.headers {
                templates.push((
                    format!("response.headers.{name}"),
                    Value::String(value.clone()),
                ));
            }
            if let Some(body) = &response.body {
                templates.push(("response.body".to_owned(), body.clone()));
            }
            for (path, value) in templates {
                if let Err(message) = crate::expr::Tpl::<Value>::from_value(value) {
                    problems.push((path, message));
                }
            }
        }
        problems
    }

    fn check_path(&self) -> Vec<(String, String)> {
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
        let mut seen = Vec::new();
        for segment in path.split('/') {
            let named = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            match named {
                Some(name) if is_identifier(name) => {
                    if seen.contains(&name) {
                        problems.push((
                            "path".to_owned(),
                            format!("path segment `{{{name}}}` appears twice"),
                        ));
                    }
                    seen.push(name);
                }
                Some(_) => problems.push((
                    "path".to_owned(),
                    format!("invalid path segment `{segment}`; write `{{name}}` with a param name"),
                )),
                None if segment.contains(['{', '}']) => problems.push((
                    "path".to_owned(),
                    format!("invalid path segment `{segment}`; a `{{name}}` segment must be a whole segment"),
                )),
                None => {}
            }
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

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

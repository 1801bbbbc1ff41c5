//! The `rest` block: the request to send, how to authenticate, what answer to accept and
//! where to put it. The doc comments here are the settings table of `docs/step-kinds/rest.md`.

use std::collections::BTreeMap;
use std::fmt;

use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;
use reqwest::header::HeaderName;

/// The settings of a `rest` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestSettings {
    /// The URL to call, `http://` or `https://`; a template.
    pub(crate) uri: Tpl<String>,
    /// `GET` (default), `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`, in any case; a template.
    pub(crate) method: Option<Tpl<Method>>,
    /// Request headers, name to value (templates). A value that is not text is sent as its
    /// JSON text; a null value leaves the header out. Never written to the step log.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Tpl<Value>>,
    /// Query parameters added to those of `uri`, name to value (templates), sent in name
    /// order. A list sends the parameter once per item; a null value leaves it out.
    #[serde(default)]
    pub(crate) query: BTreeMap<String, Tpl<Value>>,
    /// The request body, any JSON value (its strings are templates), sent as JSON with
    /// `Content-Type: application/json` unless `headers` sets another.
    pub(crate) body: Option<Tpl<Value>>,
    /// Where in `data` the body is (`"."` for all of `data`); it wins over `body`. The step's
    /// own `data_key` works the same (the spooler put it in the block).
    pub(crate) data_key: Option<String>,
    /// Form fields, name to value (templates). Without `files` they are sent
    /// `application/x-www-form-urlencoded`; with `files`, as text parts of a
    /// `multipart/form-data` body. Cannot be combined with `body` or `data_key`.
    #[serde(default)]
    pub(crate) form: BTreeMap<String, Tpl<Value>>,
    /// Files to upload as `multipart/form-data`, form field to path (templates). Paths are
    /// relative to the data directory, or inside it (`{{ run.workdir }}/out.csv`) or a
    /// `files.roots` directory; each file is streamed from disk, never read whole.
    #[serde(default)]
    pub(crate) files: BTreeMap<String, Tpl<String>>,
    /// Credentials taken from a secret (`secrets.yml`):
    /// `{type: basic|token|api_key, secret: <name>, bearer: "Bearer"}`.
    pub(crate) authentication: Option<Authentication>,
    /// The status codes that count as success. Default: any `2xx`. Any other status fails
    /// the step with `status_code: N, response_content: …` in its error.
    pub(crate) expect: Option<Vec<u16>>,
    /// How long the whole request may take, answer included (`30s`); then the step ends
    /// `timed_out`. Default: no limit of its own (the step's `timeout` still holds).
    pub(crate) timeout: Option<Tpl<Dur>>,
    /// Writes the response body to this file (template, confined like every path) instead of
    /// returning it: streamed to a temporary file beside it, then renamed into place. The
    /// result is then `{status, path, bytes}`.
    pub(crate) save_to: Option<Tpl<String>>,
    /// Returns `{status, headers, body}` instead of the body alone. Default `false`.
    #[serde(default)]
    pub(crate) full_response: bool,
    /// Not a `rest` setting: retries are the step's `retry` field. Accepted here only to say so.
    pub(crate) retry: Option<Value>,
}

/// The HTTP method of a `rest` step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Method {
    /// `GET`.
    #[default]
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `HEAD`.
    Head,
}

impl Method {
    const ALL: [Self; 6] = [
        Self::Get,
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Delete,
        Self::Head,
    ];

    /// The method's name, upper-case.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
        }
    }

    /// The method as reqwest knows it.
    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
            Self::Head => reqwest::Method::HEAD,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl schemars::JsonSchema for Method {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Method".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<String> = Self::ALL
            .iter()
            .flat_map(|m| [m.as_str().to_owned(), m.as_str().to_ascii_lowercase()])
            .collect();
        schemars::json_schema!({"description": "The HTTP method (any case).", "enum": names})
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown method `{text}`; use GET, POST, PUT, PATCH, DELETE or HEAD"
                ))
            })
    }
}

/// Where the credentials of a request come from.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Authentication {
    /// `basic`, `token` or `api_key`.
    #[serde(rename = "type")]
    pub(crate) kind: AuthKind,
    /// The name of the secret in `secrets.yml`.
    pub(crate) secret: String,
    /// For `token`: the word before the token in `Authorization`. Default `Bearer`; empty
    /// sends the token alone.
    pub(crate) bearer: Option<String>,
}

/// How a secret becomes a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthKind {
    /// `Authorization: Basic …` from a `credential` secret's `username` and `password`.
    Basic,
    /// `Authorization: <bearer> <token>` from a `token` secret (or a `value`/`env` one).
    Token,
    /// The secret's `header` (default `X-API-Key`) set to its `key`, from an `api-key`
    /// secret (or a `value`/`env` one, with `X-API-Key`).
    #[serde(alias = "api-key")]
    ApiKey,
}

impl AuthKind {
    /// The word used in the flow file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Token => "token",
            Self::ApiKey => "api_key",
        }
    }
}

impl RestSettings {
    /// The method, rendered; `GET` when not set.
    pub(crate) fn method(&self, cx: &StepCx<'_>) -> Result<Method, StepError> {
        self.method
            .as_ref()
            .map_or(Ok(Method::Get), |m| cx.render("rest.method", m))
    }

    /// Load-time problems: conflicting settings, bad names and codes, literal paths.
    pub(crate) fn problems(&self, cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.retry.is_some() {
            problems.push(Problem::at(
                "retry",
                "`retry` is a field of the step, not of its `rest` block; move it one level up",
            ));
        }
        let sends_form = !self.form.is_empty() || !self.files.is_empty();
        if sends_form && (self.body.is_some() || self.data_key.is_some()) {
            let with = if self.body.is_some() {
                "body"
            } else {
                "data_key"
            };
            problems.push(Problem::at(
                with,
                format!("`{with}` and `form`/`files` both give the request body; keep one"),
            ));
        }
        if let Some(uri) = self.uri.as_literal()
            && let Err(message) = parse_url(uri)
        {
            problems.push(Problem::at("uri", message));
        }
        for name in self.headers.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(Problem::at(
                    format!("headers.{name}"),
                    format!("invalid header name `{name}`"),
                ));
            }
        }
        problems.extend(self.expect_problems());
        if let Some(auth) = &self.authentication {
            if auth.secret.trim().is_empty() {
                problems.push(Problem::at(
                    "authentication.secret",
                    "name the secret in `secrets.yml` to authenticate with",
                ));
            }
            if auth.bearer.is_some() && auth.kind != AuthKind::Token {
                problems.push(Problem::at(
                    "authentication.bearer",
                    format!(
                        "`bearer` is only for `type: token`, not `{}`",
                        auth.kind.as_str()
                    ),
                ));
            }
        }
        if let Some(files) = cx.files {
            let literal_paths = self
                .files
                .iter()
                .map(|(field, path)| (format!("files.{field}"), path))
                .chain(self.save_to.iter().map(|p| ("save_to".to_owned(), p)));
            for (setting, tpl) in literal_paths {
                if let Some(path) = tpl.as_literal()
                    && let Err(err) = files.resolve(path)
                {
                    problems.push(Problem::at(setting, chain(&err)));
                }
            }
        }
        problems
    }

    fn expect_problems(&self) -> Vec<Problem> {
        let Some(expect) = &self.expect else {
            return Vec::new();
        };
        if expect.is_empty() {
            return vec![Problem::at(
                "expect",
                "`expect` is empty; no status could succeed (leave it out for any 2xx)",
            )];
        }
        expect
            .iter()
            .enumerate()
            .filter(|(_, code)| !(100..=599).contains(*code))
            .map(|(i, code)| {
                Problem::at(
                    format!("expect[{i}]"),
                    format!("invalid status code `{code}`; use 100 to 599"),
                )
            })
            .collect()
    }

    /// Whether a status is a success for this step.
    pub(crate) fn accepts(&self, status: u16) -> bool {
        match &self.expect {
            Some(codes) => codes.contains(&status),
            None => (200..300).contains(&status),
        }
    }

    /// The accepted statuses, for messages.
    pub(crate) fn expected_text(&self) -> String {
        match &self.expect {
            Some(codes) => codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None => "2xx".to_owned(),
        }
    }
}

/// Parses a rendered `uri`; only `http` and `https` are allowed.
pub(crate) fn parse_url(uri: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(uri.trim()).map_err(|e| format!("invalid `uri` `{uri}`: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "invalid `uri` `{uri}`: scheme `{other}` is not supported; use http or https"
        )),
    }
}

/// A rendered value as the text of a header, parameter or form field: `None` for null, a
/// string as it is, anything else as its JSON text.
pub(crate) fn text_of(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

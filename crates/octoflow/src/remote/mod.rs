//! The API client of the commands that talk to a server (`flows`, `runs`, `locks`; SPEC §11,
//! §14): requests carrying the bearer token, the server's errors turned into messages and
//! exit codes, followed log streams, and what is printed for people.

mod sse;
mod table;
mod views;

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use octoflow_core::secrets::Secret;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

pub(crate) use sse::{Event, EventReader};
pub(crate) use table::{Table, time, took};
pub(crate) use views::{FlowView, LockView, RunView, log_line, status_of};

use crate::cli::ServerArgs;

/// How long an ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server's API, as one user (or machine) sees it.
#[derive(Debug)]
pub(crate) struct Remote {
    /// The base URL as given, for messages.
    shown: String,
    base: Url,
    token: Option<Secret<HeaderValue>>,
    http: reqwest::Client,
}

/// An answer of the server with a 2xx status.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its JSON body (`null` when it had none).
    pub(crate) body: Value,
    /// Its headers.
    pub(crate) headers: reqwest::header::HeaderMap,
}

impl Remote {
    /// A client of the server `--server` names, with the token of `--token`.
    pub(crate) fn new(args: &ServerArgs) -> Result<Self> {
        let shown = args.server.trim_end_matches('/').to_owned();
        let base = Url::parse(&shown)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                anyhow!("invalid server URL `{shown}`; expected http://HOST:PORT or https://HOST")
            })?;
        let token = match args.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        anyhow!("the token holds characters that cannot be sent in an HTTP header")
                    })?;
                value.set_sensitive(true);
                Some(Secret::new(value))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("octoflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            shown,
            base,
            token,
            http,
        })
    }

    /// `<base>/api/v1/<segments…>`, each segment escaped, with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, token.expose().clone()),
            None => request,
        }
    }

    /// Sends a request and reads its JSON answer; an answer that is not 2xx is an
    /// [`ApiError`].
    pub(crate) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let writes = method == Method::POST || method == Method::PUT || method == Method::PATCH;
        let mut request = self
            .request(method, self.url(segments, query))
            .header(ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        } else if writes {
            // The API takes writes only as JSON (a browser cannot send that unasked).
            request = request.json(&serde_json::json!({}));
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("cannot read the answer of the server at {}", self.shown))?;
        if !status.is_success() {
            return Err(ApiError::from_answer(status, &bytes, self.token.is_some()).into());
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the server at {} answered {status} with a body that is not JSON",
                    self.shown
                )
            })?
        };
        Ok(Answer {
            status,
            body,
            headers,
        })
    }

    /// `GET` and its JSON answer.
    pub(crate) async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        Ok(self.call(Method::GET, segments, query, None).await?.body)
    }

    /// `GET` of a text answer (a log).
    pub(crate) async fn get_text(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<String> {
        let response = self
            .request(Method::GET, self.url(segments, query))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("cannot read the answer of the server at {}", self.shown))?;
        if !status.is_success() {
            return Err(ApiError::from_answer(status, &bytes, self.token.is_some()).into());
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Opens a Server-Sent Events stream; read it with [`Events::next`].
    pub(crate) async fn events(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Events> {
        let response = self
            .request(Method::GET, self.url(segments, query))
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(ApiError::from_answer(status, &bytes, self.token.is_some()).into());
        }
        Ok(Events {
            response,
            reader: EventReader::default(),
            ready: std::collections::VecDeque::new(),
            shown: self.shown.clone(),
        })
    }

    /// The message of a request that got no answer.
    fn unreachable(&self, err: &reqwest::Error) -> anyhow::Error {
        let cause = if err.is_timeout() {
            "no answer in time".to_owned()
        } else {
            root_cause(err)
        };
        anyhow!("cannot reach the server at {}: {cause}", self.shown)
    }
}

/// The innermost cause of an error: `Connection refused (os error 111)` rather than
/// `error sending request for url (…)`.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A Server-Sent Events stream being read.
#[derive(Debug)]
pub(crate) struct Events {
    response: reqwest::Response,
    reader: EventReader,
    ready: std::collections::VecDeque<Event>,
    shown: String,
}

impl Events {
    /// The next event; `None` when the server closed the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let chunk =
                self.response.chunk().await.with_context(|| {
                    format!("the log stream of the server at {} broke", self.shown)
                })?;
            let Some(bytes) = chunk else {
                self.reader.finish();
                return Ok(None);
            };
            self.ready.extend(self.reader.feed(&bytes));
        }
    }
}

/// An answer of the server that is not 2xx: `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What the server said.
    pub(crate) message: String,
    /// The error's details (`{run_id}` for a refused run, problems of an invalid flow).
    pub(crate) details: Value,
    /// Whether a token was sent.
    with_token: bool,
}

impl ApiError {
    fn from_answer(status: StatusCode, body: &[u8], with_token: bool) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut message = text("message");
        if message.is_empty() {
            let body = String::from_utf8_lossy(body);
            let first = body.lines().map(str::trim).find(|l| !l.is_empty());
            message = match first {
                Some(line) if line.chars().count() <= 200 => {
                    format!("the server answered {status}: {line}")
                }
                _ => format!("the server answered {status}"),
            };
        }
        Self {
            status,
            message,
            details: error
                .and_then(|e| e.get("details"))
                .cloned()
                .unwrap_or(Value::Null),
            with_token,
        }
    }

    /// 1 when the server refused what was asked because of the state of things (a conflict,
    /// too much load); 2 for a bad request, a missing thing or permission, a server error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.status {
            StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS => 1,
            _ => 2,
        }
    }

    /// The id of the run the error is about (the blocking run of a refused trigger).
    pub(crate) fn run_id(&self) -> Option<&str> {
        self.details.get("run_id").and_then(Value::as_str)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(id) = self.run_id().filter(|id| !self.message.contains(id)) {
            write!(f, " (run {id})")?;
        }
        if self.status == StatusCode::UNAUTHORIZED && !self.with_token {
            f.write_str("; give a token with --token or OCTOFLOW_TOKEN")?;
        }
        // An invalid flow's message only counts its problems; they follow, one a line.
        if self.status == StatusCode::UNPROCESSABLE_ENTITY {
            for problem in problems(&self.details) {
                write!(f, "\n{problem}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// The problems an `invalid_flow` error lists, one line each:
/// `file:line:column: path: message`, with what is known.
fn problems(details: &Value) -> Vec<String> {
    let list = ["problems", "errors"]
        .iter()
        .find_map(|k| details.get(*k).and_then(Value::as_array));
    let Some(list) = list else {
        return Vec::new();
    };
    list.iter()
        .map(|p| match p {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                let part = |k: &str| match o.get(k) {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                let place: Vec<String> = ["file", "line", "column"]
                    .iter()
                    .filter_map(|k| part(k))
                    .collect();
                let mut line = String::new();
                if !place.is_empty() {
                    line.push_str(&place.join(":"));
                    line.push_str(": ");
                }
                if let Some(path) = part("path").or_else(|| part("name")) {
                    line.push_str(&path);
                    line.push_str(": ");
                }
                line.push_str(&part("message").unwrap_or_default());
                line
            }
            other => other.to_string(),
        })
        .collect()
}

/// The exit code an error asks for: an [`ApiError`]'s, else 2.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<ApiError>())
        .map_or(2, ApiError::exit_code)
}

/// A runtime for one client command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints a JSON value on stdout, pretty.
pub(crate) fn print_json(value: &Value) -> Result<()> {
    crate::output::stdout(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
    Ok(())
}

/// Reads a JSON answer as `T`, naming what was expected when it does not fit.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|e| anyhow!("the server's answer is not {what}: {e}"))
}

/// The items of a list answer: `{items, …}` or a bare array.
pub(crate) fn items(value: &Value) -> Result<&Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(map) => match map.get("items") {
            Some(Value::Array(items)) => Ok(items),
            _ => bail!("the server's answer is not a list"),
        },
        _ => bail!("the server's answer is not a list"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(status: u16, body: &Value, with_token: bool) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap();
        ApiError::from_answer(status, body.to_string().as_bytes(), with_token)
    }

    #[test]
    fn api_errors_read_as_messages() {
        let e = error(
            409,
            &json!({"error": {"code": "conflict", "message": "flow `x` is busy", "details": {"run_id": "r1"}}}),
            true,
        );
        assert_eq!(e.to_string(), "flow `x` is busy (run r1)");
        assert_eq!(e.exit_code(), 1);

        let e = error(
            422,
            &json!({"error": {"code": "invalid_flow", "message": "flow `x` is invalid", "details": {
            "problems": [
                {"file": "flows/x.yml", "line": 3, "column": 5, "path": "steps[0].exec", "message": "unknown field"},
                "plain text",
            ]}}}),
            true,
        );
        assert_eq!(
            e.to_string(),
            "flow `x` is invalid\nflows/x.yml:3:5: steps[0].exec: unknown field\nplain text"
        );
        assert_eq!(e.exit_code(), 2);

        let e = error(
            400,
            &json!({"error": {"code": "invalid_params", "message": "invalid params: param `n`: not declared",
                "details": {"errors": [{"param": "n", "message": "not declared"}]}}}),
            true,
        );
        assert_eq!(e.to_string(), "invalid params: param `n`: not declared");

        let e = error(
            401,
            &json!({"error": {"code": "unauthenticated", "message": "a token is needed"}}),
            false,
        );
        assert_eq!(
            e.to_string(),
            "a token is needed; give a token with --token or OCTOFLOW_TOKEN"
        );
        let e = error(
            401,
            &json!({"error": {"code": "unauthenticated", "message": "bad token"}}),
            true,
        );
        assert_eq!(e.to_string(), "bad token");
    }

    #[test]
    fn answers_that_are_not_ours_say_the_status() {
        let status = StatusCode::BAD_GATEWAY;
        let e = ApiError::from_answer(status, b"<html>\n bad gateway\n", false);
        assert_eq!(e.to_string(), "the server answered 502 Bad Gateway: <html>");
        assert_eq!(
            ApiError::from_answer(status, b"", false).to_string(),
            "the server answered 502 Bad Gateway"
        );
        let err = anyhow::Error::new(e).context("while triggering");
        assert_eq!(exit_code(&err), 2);
        assert_eq!(exit_code(&anyhow!("other")), 2);
    }

    #[test]
    fn urls_escape_each_segment() {
        let args = ServerArgs {
            server: "http://h:1/prefix/".into(),
            token: None,
        };
        let remote = Remote::new(&args).unwrap();
        assert_eq!(
            remote
                .url(
                    &["locks", "a/b c"],
                    &[("status", "failed"), ("flow", "x&y")]
                )
                .as_str(),
            "http://h:1/prefix/api/v1/locks/a%2Fb%20c?status=failed&flow=x%26y"
        );
        for bad in ["127.0.0.1:8080", "ftp://h", "not a url"] {
            let args = ServerArgs {
                server: bad.into(),
                token: None,
            };
            assert!(Remote::new(&args).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let args = ServerArgs {
            server: "http://h".into(),
            token: Some("s3cret-token".into()),
        };
        let remote = Remote::new(&args).unwrap();
        assert!(!format!("{remote:?}").contains("s3cret"));
    }
}

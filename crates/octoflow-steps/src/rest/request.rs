//! Building one request from rendered settings: URL and query, headers, credentials from a
//! secret, and the body (JSON, a urlencoded form, or a multipart upload streamed from disk).

use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::multipart::{Form, Part};

use super::settings::{AuthKind, Authentication, RestSettings, parse_url, text_of};

/// The header an `api-key` secret without its own `header` is sent in.
const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";

/// A request ready to send, and how to name it in logs and errors.
pub(super) struct Outgoing {
    /// The request.
    pub(super) request: reqwest::RequestBuilder,
    /// `GET http://host/path`: the method and the URL without its query (which may hold
    /// credentials), for logs and errors.
    pub(super) shown: String,
}

/// Renders the settings into a request on `client`.
pub(super) async fn build(
    settings: &RestSettings,
    cx: &StepCx<'_>,
    client: &reqwest::Client,
) -> Result<Outgoing, StepError> {
    let method = settings.method(cx)?;
    let uri = cx.render("rest.uri", &settings.uri)?;
    let mut url = parse_url(&uri).map_err(StepError::fatal)?;
    let mut pairs = Vec::new();
    for (name, tpl) in &settings.query {
        match cx.render(&format!("rest.query.{name}"), tpl)? {
            Value::Array(items) => pairs.extend(
                items
                    .into_iter()
                    .filter_map(text_of)
                    .map(|v| (name.as_str(), v)),
            ),
            value => pairs.extend(text_of(value).map(|v| (name.as_str(), v))),
        }
    }
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let shown = format!("{method} {}", without_query(&url));

    let mut headers = headers(settings, cx)?;
    if let Some(auth) = &settings.authentication {
        let (name, value) = credentials(auth, cx)?;
        headers.insert(name, value);
    }
    let request = client.request(method.to_reqwest(), url).headers(headers);
    let request = body(settings, cx, request).await?;
    Ok(Outgoing { request, shown })
}

/// A URL as logs and errors show it: without its query, fragment or password (which may
/// hold credentials).
pub(super) fn without_query(url: &reqwest::Url) -> reqwest::Url {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown
}

/// The rendered `headers`.
fn headers(settings: &RestSettings, cx: &StepCx<'_>) -> Result<HeaderMap, StepError> {
    let mut map = HeaderMap::new();
    for (name, tpl) in &settings.headers {
        let Some(text) = text_of(cx.render(&format!("rest.headers.{name}"), tpl)?) else {
            continue;
        };
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StepError::fatal(format!("invalid header name `{name}`")))?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            StepError::fatal(format!(
                "invalid value for header `{name}`: it holds a line break or a control character"
            ))
        })?;
        map.append(header, value);
    }
    Ok(map)
}

/// The header that carries the credentials of `auth`, marked sensitive.
fn credentials(
    auth: &Authentication,
    cx: &StepCx<'_>,
) -> Result<(HeaderName, HeaderValue), StepError> {
    let secrets = cx.secrets();
    let name = auth.secret.as_str();
    if !secrets.contains(name) {
        return Err(StepError::fatal(format!(
            "unknown secret `{name}` in `authentication.secret`; add it to secrets.yml"
        )));
    }
    let needs = |what: &str, kind: &str| {
        StepError::fatal(format!(
            "secret `{name}` has no `{what}`; `type: {}` authentication needs a `{kind}` secret",
            auth.kind.as_str()
        ))
    };
    let (header, text) = match auth.kind {
        AuthKind::Basic => {
            let user = secrets
                .plain_field(name, "username")
                .ok_or_else(|| needs("username", "credential"))?;
            let password = secrets
                .field(name, "password")
                .ok_or_else(|| needs("password", "credential"))?;
            let pair = format!("{user}:{}", password.expose());
            (
                AUTHORIZATION,
                format!("Basic {}", base64_encode(pair.as_bytes())),
            )
        }
        AuthKind::Token => {
            let token = secrets
                .field(name, "token")
                .or_else(|| secrets.field(name, "value"))
                .ok_or_else(|| needs("token", "token"))?;
            let word = auth.bearer.as_deref().unwrap_or("Bearer").trim();
            let text = if word.is_empty() {
                token.expose().clone()
            } else {
                format!("{word} {}", token.expose())
            };
            (AUTHORIZATION, text)
        }
        AuthKind::ApiKey => {
            let key = secrets
                .field(name, "key")
                .or_else(|| secrets.field(name, "value"))
                .ok_or_else(|| needs("key", "api-key"))?;
            let header = secrets
                .plain_field(name, "header")
                .unwrap_or(DEFAULT_API_KEY_HEADER);
            let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                StepError::fatal(format!(
                    "secret `{name}` names an invalid header `{header}`"
                ))
            })?;
            (header, key.expose().clone())
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        StepError::fatal(format!(
            "secret `{name}` cannot be sent in a header: it holds a line break or a control character"
        ))
    })?;
    value.set_sensitive(true);
    Ok((header, value))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Adds the body: `data_key`'s value or `body` as JSON, else `form`/`files`.
async fn body(
    settings: &RestSettings,
    cx: &StepCx<'_>,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, StepError> {
    let sends_form = !settings.form.is_empty() || !settings.files.is_empty();
    if let Some(value) = cx.input_with(settings.data_key.as_deref())? {
        if sends_form {
            return Err(StepError::fatal(
                "`data_key` and `form`/`files` both give the request body; keep one",
            ));
        }
        return Ok(request.json(&value));
    }
    if let Some(body) = &settings.body {
        return Ok(request.json(&cx.render("rest.body", body)?));
    }
    if !sends_form {
        return Ok(request);
    }
    let mut fields = Vec::new();
    for (name, tpl) in &settings.form {
        if let Some(text) = text_of(cx.render(&format!("rest.form.{name}"), tpl)?) {
            fields.push((name.clone(), text));
        }
    }
    if settings.files.is_empty() {
        return Ok(request.form(&fields));
    }
    let mut form = fields
        .into_iter()
        .fold(Form::new(), |form, (name, text)| form.text(name, text));
    for (field, tpl) in &settings.files {
        let setting = format!("rest.files.{field}");
        let path = cx.render(&setting, tpl)?;
        let safe = cx
            .files()
            .resolve(&path)
            .map_err(|e| StepError::fatal(format!("cannot upload `{setting}`: {}", chain(&e))))?;
        let part = Part::file(safe.as_path()).await.map_err(|e| {
            StepError::fatal(format!(
                "cannot upload `{setting}`: cannot read `{path}`: {e}"
            ))
        })?;
        form = form.part(field.clone(), part);
    }
    Ok(request.multipart(form))
}

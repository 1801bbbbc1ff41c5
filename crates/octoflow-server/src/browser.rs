//! The rules that keep a web browser from driving the API by accident (docs/auth.md):
//!
//! - **Writes carry their content type.** A `POST`, `PUT` or `PATCH` to the API must say
//!   `Content-Type: application/json` (or what its route takes, [`Body`]); a page on another
//!   site can send a form or plain text without asking, but not JSON — for that the browser
//!   asks first, and this server never says yes. Anything else is `415` and changes nothing.
//! - **The `Host` is this server's.** A page whose domain is made to point at this machine
//!   (DNS rebinding) sends its own name as `Host`: the API answers only to an IP address,
//!   `localhost`, or the host of `public_url`.
//!
//! Webhooks follow neither rule: they take the bodies their flows declare, from callers that
//! name this server as they know it, and each has its own `auth`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, Code};

/// The body a write route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Reads and writes without a body (`GET`, `DELETE`).
    None,
    /// JSON (an empty body is `{}`).
    Json,
    /// JSON or an HTML form (the login).
    JsonOrForm,
    /// A flow's YAML (JSON is YAML too).
    Yaml,
}

impl Body {
    /// The content types the route takes, for messages.
    fn expected(self) -> &'static [&'static str] {
        match self {
            Self::None | Self::Json => &["application/json"],
            Self::JsonOrForm => &["application/json", "application/x-www-form-urlencoded"],
            Self::Yaml => &["application/yaml", "application/json"],
        }
    }

    /// Whether a body of this media type (lowercase, without parameters) is taken.
    fn takes(self, mime: &str) -> bool {
        let json = mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json"));
        match self {
            Self::None | Self::Json => json,
            Self::JsonOrForm => json || mime == "application/x-www-form-urlencoded",
            Self::Yaml => {
                json || matches!(
                    mime,
                    "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
                )
            }
        }
    }
}

/// The media type of a request, lowercase and without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let text = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = text.split(';').next()?.trim().to_ascii_lowercase();
    (!mime.is_empty()).then_some(mime)
}

/// Refuses a write whose content type its route does not take.
pub(crate) async fn require_content_type(
    State(body): State<Body>,
    request: Request,
    next: Next,
) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    );
    if writes {
        let mime = media_type(request.headers());
        if !mime.as_deref().is_some_and(|m| body.takes(m)) {
            let expected = body.expected();
            let said = mime.map_or_else(|| "none".to_owned(), |m| format!("`{m}`"));
            return ApiError::new(
                Code::UnsupportedMediaType,
                format!(
                    "a write to the API needs `Content-Type: {}` (this request said {said})",
                    expected[0]
                ),
            )
            .with_details(json!({ "expected": expected }))
            .into_response();
        }
    }
    next.run(request).await
}

/// The names the API answers to: IP addresses, `localhost`, and `public_url`'s host.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// The host of `public_url`, lowercase, without port.
    public: Option<String>,
    /// Whether `public_url` is `https://…`: browsers reach the server over TLS (a proxy's).
    https: bool,
    /// `public_url` without a trailing `/`: where pages say the webhooks are.
    base: Option<String>,
}

impl AllowedHosts {
    /// The API answers to IP addresses, `localhost`, and the host of `public_url`.
    pub fn new(public_url: Option<&str>) -> Self {
        let public = public_url.and_then(|url| {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let authority = rest.split(['/', '?', '#']).next()?;
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            Some(strip_port(host).to_ascii_lowercase())
        });
        let https = public_url.is_some_and(|url| {
            url.get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        });
        let base = public_url
            .map(|url| url.trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty());
        Self {
            public,
            https,
            base,
        }
    }

    /// `path` (`/hooks/launch`) as a full URL under `public_url`; the path alone without it.
    pub(crate) fn url(&self, path: &str) -> String {
        match &self.base {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }

    /// Whether browsers reach the server over https (`public_url` says so): its cookies are
    /// then `Secure`.
    pub(crate) fn https(&self) -> bool {
        self.https
    }

    /// Whether a request naming `host` (the `Host` header) is for this server.
    fn allows(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.public.as_deref() == Some(name.as_str())
    }
}

/// `host:port` → `host`; `[::1]:8080` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Refuses an API request whose `Host` is not this server's (DNS rebinding).
pub(crate) async fn require_own_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    if let Some(host) = host
        && !hosts.allows(host)
    {
        return ApiError::bad_request(format!(
            "this server does not answer to host `{}`; set `public_url` in config to serve the API under that name",
            strip_port(host)
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_route_body() {
        assert!(Body::Json.takes("application/json"));
        assert!(Body::Json.takes("application/merge-patch+json"));
        assert!(!Body::Json.takes("text/plain"));
        assert!(!Body::Json.takes("application/x-www-form-urlencoded"));
        assert!(!Body::Json.takes("multipart/form-data"));
        assert!(Body::JsonOrForm.takes("application/x-www-form-urlencoded"));
        assert!(Body::Yaml.takes("application/yaml"));
        assert!(Body::Yaml.takes("text/yaml"));
        assert!(!Body::Yaml.takes("text/plain"));
    }

    #[test]
    fn hosts() {
        let hosts = AllowedHosts::new(Some("https://Flows.example.org/base"));
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "flows.example.org",
            "FLOWS.example.org:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "flows.example.org.evil.example:8080",
            "127.0.0.1.nip.io",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(!AllowedHosts::new(None).allows("flows.example.org"));
    }
}

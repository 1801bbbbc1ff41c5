//! How long the server takes to answer, for `/metrics`:
//! `octoflow_http_request_seconds{method, route, status}`, from the request reaching the
//! router to its answer's head (a streamed body, such as live logs, is not waited for).
//!
//! `route` is the template the request matched — `/api/v1/runs/{id}`, a webhook's declared
//! path — never the path itself, so ids and tokens make no series of their own; a request that
//! matched nothing counts under `unmatched`. `method` is one of the standard methods, or
//! `other` for any made-up one, so a client cannot grow the number of series either.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// The route an answer counts under when axum matched none (webhooks are served by the
/// fallback): set on the answer by its handler.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabel(pub(crate) String);

/// The middleware: times the request and records it under its route.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|label| label.0.clone())
        .or(matched)
        .unwrap_or_else(|| "unmatched".to_owned());
    metrics::histogram!(
        "octoflow_http_request_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed());
    response
}

/// The label of a request's method: the standard ones by name, every other as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "BREW", "X1", "CONNECT", "TRACE"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}

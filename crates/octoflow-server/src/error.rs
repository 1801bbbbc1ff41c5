//! API errors: one [`Code`] table (the contract clients match on) and [`ApiError`], which
//! renders SPEC §11's `{"error": {"code", "message", "details"}}` with the code's status.
//!
//! Domain errors become API errors here (`From<StoreError>`, `From<AcceptError>`, …); core
//! never knows HTTP. An internal error answers only `internal error` and the request id: its
//! cause travels in a response extension to a middleware (`log_internal`), which logs it with the request
//! id and writes the id into the answer.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use octoflow_core::engine::AcceptError;
use octoflow_core::error::{BoxError, chain};
use octoflow_core::flow::{Problem, Problems};
use octoflow_core::store::StoreError;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The header carrying each request's id (set when the client sends none).
pub const REQUEST_ID: &str = "x-request-id";

/// What went wrong, as clients match on it. Each code has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Malformed input: bad JSON, a bad query field, a bad path (400).
    BadRequest,
    /// The run's params do not fit the flow's declarations (400).
    InvalidParams,
    /// No token, or a wrong, expired or revoked one (401).
    Unauthenticated,
    /// The token's role is too low for the route (403).
    Forbidden,
    /// No such flow, run, file, lock or route (404).
    NotFound,
    /// The path exists but does not answer this method: a webhook's `methods` (405).
    MethodNotAllowed,
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// The request clashes with the current state: a run already ended, a `skip` policy (409).
    Conflict,
    /// The body is larger than the server accepts (413).
    PayloadTooLarge,
    /// A write without the content type its route takes (415).
    UnsupportedMediaType,
    /// The flow does not validate (422).
    InvalidFlow,
    /// The server is too busy; try again later (429).
    Overloaded,
    /// A bug; the answer carries only a request id (500).
    Internal,
    /// The store cannot be reached now (a database restarting); try again (503).
    Unavailable,
}

impl Code {
    /// Every code, in status order.
    pub const ALL: &[Self] = &[
        Self::BadRequest,
        Self::InvalidParams,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidFlow,
        Self::Overloaded,
        Self::Internal,
        Self::Unavailable,
    ];

    /// The HTTP status answered with this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::InvalidParams => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidFlow => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code as written in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidParams => "invalid_params",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidFlow => "invalid_flow",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }
}

/// An error answer: a code, a message for people and details for programs.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub code: Code,
    /// Lowercase, naming the thing, with a hint when one is known.
    pub message: String,
    /// Machine-readable specifics (an object; `{}` when there are none).
    pub details: Value,
    /// The cause of an internal error, logged, never answered.
    pub source: Option<BoxError>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// The `error` object of an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// The code (see `docs/errors.md`).
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
    /// Specifics, for programs.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with a code and a message, without details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Object(Map::new()),
            source: None,
        }
    }

    /// Adds details (an object).
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// An internal error: answered as `internal error` with the request id, the cause logged.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(Code::Internal, "internal error")
        }
    }

    /// `details.retry_after`, in seconds, when set.
    fn details_retry_after(&self) -> Option<u64> {
        self.details.get("retry_after").and_then(Value::as_u64)
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// `409 conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Code::Conflict, message)
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// `422 invalid_flow` listing every problem in `details.errors`.
    pub fn invalid_flow(name: &str, problems: &[Problem]) -> Self {
        let count = problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        Self::new(
            Code::InvalidFlow,
            format!("flow `{name}` is not valid ({count} {noun})"),
        )
        .with_details(json!({ "errors": problem_list(problems) }))
    }
}

/// Problems as `[{line, column, path, message}]`.
pub fn problem_list(problems: &[Problem]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| json!({"line": p.line, "column": p.column, "path": p.path, "message": p.message}))
        .collect()
}

impl From<Problems> for ApiError {
    fn from(problems: Problems) -> Self {
        let name = std::path::Path::new(&problems.file)
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        Self::invalid_flow(&name, &problems.items)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what } => {
                Self::conflict(format!("conflict: {what}")).with_details(json!({ "what": what }))
            }
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %chain(&*source), "The store is unavailable.");
                Self::new(
                    Code::Unavailable,
                    "the store cannot be reached now; try again shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        match error {
            AcceptError::Params(problems) => {
                let errors: Vec<Value> = problems
                    .iter()
                    .map(|p| json!({"param": p.name, "message": p.message}))
                    .collect();
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                Self::new(
                    Code::InvalidParams,
                    format!("invalid params: {}", text.join("; ")),
                )
                .with_details(json!({ "errors": errors }))
            }
            AcceptError::ConcurrencyKey(message) => Self::new(
                Code::InvalidParams,
                format!("cannot render the concurrency key: {message}"),
            ),
            AcceptError::Store(error) => error.into(),
        }
    }
}

/// The cause of an internal error, handed from the answer to [`log_internal`].
#[derive(Clone)]
pub(crate) struct InternalCause(pub(crate) Arc<BoxError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.details_retry_after();
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if matches!(self.code, Code::Unavailable | Code::Overloaded) {
            // `details.retry_after` (seconds) when the error knows it, else a second.
            let after = retry_after.unwrap_or(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        if self.code == Code::Internal {
            let cause: BoxError = self
                .source
                .unwrap_or_else(|| "internal error without a cause".into());
            response
                .extensions_mut()
                .insert(InternalCause(Arc::new(cause)));
        }
        response
    }
}

/// Middleware: logs the cause of an internal error with the request id, and answers the
/// request id in `details.request_id` (the cause never reaches the client).
pub(crate) async fn log_internal(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let method = request.method().clone();
    let path = crate::login_guard::shown_path(request.uri().path()).into_owned();
    let mut response = next.run(request).await;
    let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() else {
        return response;
    };
    let error: &(dyn std::error::Error + 'static) = &**cause;
    tracing::error!(request_id = %request_id, method = %method, path = %path, error = %chain(error), "Request failed.");
    let mut answer = ApiError::new(Code::Internal, "internal error")
        .with_details(json!({ "request_id": request_id }))
        .into_response();
    answer.extensions_mut().remove::<InternalCause>();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        answer.headers_mut().insert(REQUEST_ID, value);
    }
    answer
}

/// The answer to a panic in a handler: an internal error whose cause is the panic message.
// `CatchPanicLayer::custom` hands the panic over by value.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    let mut response = ApiError::internal(format!("handler panicked: {message}")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_status_and_word() {
        #[track_caller]
        fn case(code: Code, status: u16, word: &str) {
            assert_eq!(code.status().as_u16(), status);
            assert_eq!(code.as_str(), word);
            assert_eq!(serde_json::to_value(code).unwrap(), json!(word));
        }
        case(Code::BadRequest, 400, "bad_request");
        case(Code::InvalidParams, 400, "invalid_params");
        case(Code::Unauthenticated, 401, "unauthenticated");
        case(Code::Forbidden, 403, "forbidden");
        case(Code::NotFound, 404, "not_found");
        case(Code::MethodNotAllowed, 405, "method_not_allowed");
        case(Code::Conflict, 409, "conflict");
        case(Code::PayloadTooLarge, 413, "payload_too_large");
        case(Code::RequestTimeout, 408, "request_timeout");
        case(Code::UnsupportedMediaType, 415, "unsupported_media_type");
        case(Code::InvalidFlow, 422, "invalid_flow");
        case(Code::Overloaded, 429, "overloaded");
        case(Code::Internal, 500, "internal");
        case(Code::Unavailable, 503, "unavailable");
        assert_eq!(Code::ALL.len(), 14);
    }

    #[test]
    fn store_errors_never_show_their_cause() {
        let error: ApiError = StoreError::Backend("SELECT * FROM secret_table".into()).into();
        assert_eq!(error.code, Code::Internal);
        assert_eq!(error.message, "internal error");
        let error: ApiError =
            StoreError::Unavailable("connection to db:5432 refused".into()).into();
        assert_eq!(error.code, Code::Unavailable);
        assert!(!error.message.contains("db:5432"), "{}", error.message);
        let answer = error.into_response();
        assert_eq!(answer.status().as_u16(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
        let error: ApiError = StoreError::Conflict {
            what: "run id".to_owned(),
        }
        .into();
        assert_eq!(error.code, Code::Conflict);
    }
}

//! Extractors that reject with our error shape: [`ApiJson`] names the field path of a bad
//! JSON body (`params.count: invalid type: …`), [`ApiQuery`] the query field, [`TextBody`]
//! reads a YAML body; an oversized body is `413 payload_too_large`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, Code};

/// A JSON body, deserialized with its field path in errors. An empty body reads as `{}`, so
/// `POST` routes whose fields are all optional need no body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::bad_request(
                "expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Whether the request says its body is JSON, or says nothing.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads the whole body within the router's limit.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|e| body_rejection(&e))
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::PayloadTooLarge,
            "request body is larger than the server accepts",
        )
    } else {
        ApiError::bad_request(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// Deserializes a JSON body; errors name the field path and the place.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // A body that parses needs no path: following it costs an allocation per key. A body
    // that does not is read again, following the path, to name the place.
    serde_json::from_slice(bytes).or_else(|_| parse_json_with_path(bytes))
}

/// [`parse_json`] naming the field path of an error.
fn parse_json_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        // `.` is the root, `?` a place serde could not name (such as a syntax error).
        let path = Some(e.path().to_string()).filter(|p| p != "." && p != "?");
        let inner = e.inner();
        let (line, column) = (inner.line(), inner.column());
        let what = inner.to_string();
        let message = match &path {
            Some(path) => format!("invalid JSON body: {path}: {what}"),
            None => format!("invalid JSON body: {what}"),
        };
        let path = path.unwrap_or_default();
        ApiError::bad_request(message)
            .with_details(json!({ "path": path, "line": line, "column": column }))
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(format!("invalid JSON body: {e}"))
            .with_details(json!({ "path": "", "line": e.line(), "column": e.column() }))
    })?;
    Ok(value)
}

/// A query string, deserialized with the field name in errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let what = e.inner().to_string();
                if field == "." || field == "?" {
                    ApiError::bad_request(format!("invalid query: {what}"))
                } else {
                    query_error(&field, &what)
                }
            })
    }
}

/// `400 bad_request` naming a query field.
pub(crate) fn query_error(field: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!("invalid query field `{field}`: {what}"))
        .with_details(json!({ "field": field }))
}

/// A text body (YAML), up to the router's limit; it must be UTF-8.
#[derive(Debug, Clone, Default)]
pub struct TextBody(pub String);

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        String::from_utf8(bytes.to_vec())
            .map(TextBody)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "request body is not UTF-8 text (byte {})",
                    e.utf8_error().valid_up_to()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Only deserialized.
    struct Body {
        #[serde(default)]
        params: Params,
    }

    #[derive(Debug, Default, Deserialize)]
    #[allow(dead_code)] // Only deserialized.
    struct Params {
        count: Option<u32>,
    }

    #[test]
    fn json_errors_name_the_field_path() {
        #[track_caller]
        fn case(body: &str, message: &str, path: &str) {
            let error = parse_json::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code, Code::BadRequest);
            assert_eq!(error.message, message);
            assert_eq!(error.details["path"], path);
        }
        case(
            r#"{"params": {"count": "x"}}"#,
            "invalid JSON body: params.count: invalid type: string \"x\", expected u32 at line 1 column 24",
            "params.count",
        );
        case(
            r#"{"parms": {}}"#,
            "invalid JSON body: parms: unknown field `parms`, expected `params` at line 1 column 8",
            "parms",
        );
        case(
            "{",
            "invalid JSON body: EOF while parsing an object at line 1 column 1",
            "",
        );
        case(
            "{} x",
            "invalid JSON body: trailing characters at line 1 column 4",
            "",
        );
        assert!(parse_json::<Body>(b"").is_ok());
    }

    #[test]
    fn json_is_the_default_content_type() {
        let mut headers = HeaderMap::new();
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}

/// The address of the client, when the server was started with connection info (`serve`
/// does; tests driving the router directly have none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

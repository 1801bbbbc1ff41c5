//! What comes back: the status checked against `expect`, the body parsed (JSON, else text)
//! with a size limit, or streamed to a file for `save_to`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use octoflow_core::fs::SafePath;
use octoflow_core::step::prelude::*;
use reqwest::header::HeaderMap;
use serde_json::Map;
use tokio::io::AsyncWriteExt;

use super::settings::RestSettings;

/// How much of a refused answer's body goes into the error text.
const ERROR_CONTENT_BYTES: usize = 2048;

/// The error for a transport failure of `shown` (connect, send, read).
pub(super) fn transport_error(shown: &str, err: reqwest::Error) -> StepError {
    // A request that cannot be built, or a redirect refused, would fail again.
    let retryable = !err.is_builder() && !err.is_redirect();
    let err = err.without_url();
    let message = format!(
        "request `{shown}` failed: {}",
        octoflow_core::error::chain(&err)
    );
    StepError::Failed { message, retryable }
}

/// Fails the step when the status is not accepted: `status_code: N, response_content: …`
/// (the spooler's words, so `ignore_errors` patterns keep working). 5xx, 429 and 408 may
/// be retried; other refusals will not change on a retry.
pub(super) async fn check_status(
    settings: &RestSettings,
    shown: &str,
    mut response: reqwest::Response,
) -> Result<reqwest::Response, StepError> {
    let status = response.status().as_u16();
    if settings.accepts(status) {
        return Ok(response);
    }
    let mut head = Vec::new();
    while head.len() <= ERROR_CONTENT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let content = clip(&String::from_utf8_lossy(&head), ERROR_CONTENT_BYTES);
    let retryable = status >= 500 || status == 429 || status == 408;
    Err(StepError::Failed {
        message: format!(
            "`{shown}` answered an unexpected status (expected {}): status_code: {status}, response_content: {content}",
            settings.expected_text()
        ),
        retryable,
    })
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let end = text
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= max)
        .last()
        .unwrap_or(0);
    let mut clipped = text.to_owned();
    clipped.truncate(end);
    clipped.push('…');
    clipped
}

/// Reads the whole body, refusing one larger than `max` bytes.
pub(super) async fn read_body(
    shown: &str,
    mut response: reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, StepError> {
    let too_large = || {
        StepError::fatal(format!(
            "the answer of `{shown}` is larger than {max} bytes; use `save_to` to write it to a file"
        ))
    };
    if response.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(shown, e))?
    {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A body as a value: null when empty, JSON when it parses, else text (lossy UTF-8).
pub(super) fn parse_body(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Response headers as an object: name to text; a header sent several times becomes a list.
pub(super) fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        map.insert(name.as_str().to_owned(), value);
    }
    Value::Object(map)
}

/// Streams the body into a temporary file beside `path`, then renames it into place; returns
/// the number of bytes. Nothing is left behind on failure or cancel (the temporary file is
/// removed when dropped).
pub(super) async fn save(
    shown: &str,
    mut response: reqwest::Response,
    path: &SafePath,
    max: u64,
) -> Result<u64, StepError> {
    let too_large = || {
        StepError::failed(format!(
            "the answer of `{shown}` is larger than {max} bytes (`http.max_save_bytes`); nothing was written"
        ))
    };
    if response.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let target = path.as_path().to_path_buf();
    let io_error = |what: &str, e: &std::io::Error| {
        StepError::failed(format!(
            "cannot {what} `{}` for the answer of `{shown}`: {e}",
            target.display()
        ))
    };
    let (tmp, file) = blocking(temp_beside(target.clone()))
        .await
        .map_err(|e| io_error("create a temporary file beside", &e))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut bytes = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(shown, e))?
    {
        bytes += chunk.len() as u64;
        if bytes > max {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error("write", &e))?;
    }
    file.flush().await.map_err(|e| io_error("write", &e))?;
    file.sync_data().await.map_err(|e| io_error("write", &e))?;
    drop(file);
    let destination = target.clone();
    blocking(move || {
        let permissions = match std::fs::metadata(&destination) {
            Ok(meta) => meta.permissions(),
            Err(_) => std::fs::Permissions::from_mode(0o644),
        };
        tmp.as_file().set_permissions(permissions)?;
        tmp.persist(&destination).map(drop).map_err(|e| e.error)
    })
    .await
    .map_err(|e| io_error("write", &e))?;
    Ok(bytes)
}

/// Creates the parent directories and a temporary file in the same directory as `target`.
fn temp_beside(
    target: PathBuf,
) -> impl FnOnce() -> std::io::Result<(tempfile::NamedTempFile, std::fs::File)> {
    move || {
        let dir = target.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".octoflow-")
            .suffix(".part")
            .tempfile_in(dir)?;
        let file = tmp.as_file().try_clone()?;
        Ok((tmp, file))
    }
}

/// Runs file-system work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_characters_whole() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("aé", 2), "a…");
    }

    #[test]
    fn bodies_parse_as_json_else_text() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(b" \n"), Value::Null);
        assert_eq!(parse_body(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_body(b"hello"), json!("hello"));
    }
}

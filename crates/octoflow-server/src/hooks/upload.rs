//! A webhook's body: JSON, a form, text, or a `multipart/form-data` upload whose files are
//! streamed to disk chunk by chunk — never held whole in memory — into the run's workspace
//! (`<data>/runs/<run id>/uploads/`).
//!
//! The raw body may be at most `limits.max_upload_bytes` (multipart framing included): past
//! it the answer is `413 payload_too_large` and every file written so far is removed with the
//! workspace ([`Workspace`] removes it unless the run was recorded). File names are
//! sanitised: the last path component only, no control characters, no leading dots, no
//! `..`; a name already taken gets `-1`, `-2`, … before its extension.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::Refused;
use super::auth::BodyMac;
use crate::error::{ApiError, Code};

/// The buffer between a file field and its file.
const WRITE_BUFFER: usize = 256 * 1024;
/// The longest file name kept, in bytes.
const MAX_NAME: usize = 200;

/// A file saved from an upload.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    /// The form field.
    pub(super) field: String,
    /// The file's path.
    pub(super) path: PathBuf,
    /// Its size.
    pub(super) bytes: u64,
}

/// What the body held.
#[derive(Debug)]
pub(super) enum Payload {
    /// Nothing.
    Empty,
    /// A JSON document.
    Json(Value),
    /// Form fields (`application/x-www-form-urlencoded`, or the text parts of a multipart).
    Form(Vec<(String, String)>, Vec<Saved>),
    /// Anything else, as text.
    Text(String),
}

/// The run's workspace while a request is handled: removed when dropped, unless the run it
/// was made for was recorded ([`Workspace::keep`]).
pub(super) struct Workspace {
    dir: PathBuf,
    made: bool,
    keep: bool,
}

impl Workspace {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            made: false,
            keep: false,
        }
    }

    /// The run now owns it.
    pub(super) fn keep(&mut self) {
        self.keep = true;
    }

    async fn uploads(&mut self) -> std::io::Result<PathBuf> {
        let dir = self.dir.join("uploads");
        if !self.made {
            self.made = true;
            tokio::fs::create_dir_all(&dir).await?;
        }
        Ok(dir)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if self.made && !self.keep {
            // Runs on refusal and on a dropped connection alike; the folder is the request's.
            if let Err(error) = std::fs::remove_dir_all(&self.dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %self.dir.display(), error = %error, "Cannot remove a refused upload.");
            }
        }
    }
}

fn too_large(limit: u64) -> Refused {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the body is larger than {limit} bytes (`limits.max_upload_bytes`)"),
    )
    .with_details(serde_json::json!({ "limit": limit }))
    .into()
}

/// Counts the raw body and feeds the signature check.
struct Meter<'m> {
    total: u64,
    limit: u64,
    over: bool,
    mac: Option<&'m mut BodyMac>,
}

impl Meter<'_> {
    fn feed(&mut self, chunk: Result<Bytes, axum::Error>) -> Result<Bytes, std::io::Error> {
        let chunk = chunk.map_err(std::io::Error::other)?;
        self.total += chunk.len() as u64;
        if self.total > self.limit {
            self.over = true;
            return Err(std::io::Error::other("body too large"));
        }
        if let Some(mac) = self.mac.as_mut() {
            mac.update(&chunk);
        }
        Ok(chunk)
    }
}

/// Reads the body by its content type.
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    workspace: &mut Workspace,
    mac: Option<&mut BodyMac>,
) -> Result<Payload, Refused> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut meter = Meter {
        total: 0,
        limit,
        over: false,
        mac,
    };
    if mime == "multipart/form-data" {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
        let stream = body.into_data_stream().map(|chunk| meter.feed(chunk));
        let read = multipart(stream, &boundary, workspace).await;
        return match read {
            Err(_) if meter.over => Err(too_large(limit)),
            other => other,
        };
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = meter.feed(chunk).map_err(|e| {
            if meter.over {
                too_large(limit)
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}")).into()
            }
        })?;
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Payload::Empty);
    }
    if mime == "application/json" || mime.ends_with("+json") {
        return crate::extract::parse_json::<Value>(&bytes)
            .map(Payload::Json)
            .map_err(Refused::from);
    }
    if mime == "application/x-www-form-urlencoded" {
        let fields = form_urlencoded::parse(&bytes).into_owned().collect();
        return Ok(Payload::Form(fields, Vec::new()));
    }
    Ok(Payload::Text(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Reads a multipart body: text parts as fields, file parts streamed to the workspace.
async fn multipart<S>(
    stream: S,
    boundary: &str,
    workspace: &mut Workspace,
) -> Result<Payload, Refused>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    let bad = |e: multer::Error| -> Refused {
        ApiError::bad_request(format!("invalid multipart body: {e}")).into()
    };
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    let mut files = Vec::new();
    while let Some(mut field) = parts.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                text.extend_from_slice(&chunk);
            }
            fields.push((name, String::from_utf8_lossy(&text).into_owned()));
            continue;
        };
        let dir = workspace.uploads().await.map_err(ApiError::internal)?;
        let (path, file) = create_unique(&dir, &sanitize(&file_name))
            .await
            .map_err(ApiError::internal)?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut bytes = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        out.flush().await.map_err(ApiError::internal)?;
        files.push(Saved {
            field: name,
            path,
            bytes,
        });
    }
    Ok(Payload::Form(fields, files))
}

/// A safe file name: the last path component, without control characters, leading dots or
/// `..`, at most [`MAX_NAME`] bytes; `upload` when nothing is left.
pub(super) fn sanitize(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = last.chars().filter(|c| !c.is_control()).collect();
    while clean.contains("..") {
        clean = clean.replace("..", ".");
    }
    let mut clean = clean.trim().trim_start_matches('.').trim().to_owned();
    if clean.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !clean.is_char_boundary(cut) {
            cut -= 1;
        }
        clean.truncate(cut);
    }
    if clean.is_empty() {
        "upload".to_owned()
    } else {
        clean
    }
}

/// Creates a new file named `name` in `dir`, or `stem-1.ext`, `stem-2.ext`, … when taken.
async fn create_unique(dir: &Path, name: &str) -> std::io::Result<(PathBuf, tokio::fs::File)> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    };
    for n in 0u32.. {
        let candidate = match (n, ext) {
            (0, _) => name.to_owned(),
            (n, Some(ext)) => format!("{stem}-{n}.{ext}"),
            (n, None) => format!("{stem}-{n}"),
        };
        let path = dir.join(&candidate);
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free file name"))
}

/// The fields of a form as params' text values and as the run's input.
pub(super) fn form_input(fields: &[(String, String)], files: &[Saved]) -> Value {
    let mut input = Map::new();
    for (name, value) in fields {
        input.insert(name.clone(), Value::String(value.clone()));
    }
    for file in files {
        input.insert(
            file.field.clone(),
            Value::String(file.path.display().to_string()),
        );
    }
    Value::Object(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_sanitised() {
        #[track_caller]
        fn case(given: &str, expected: &str) {
            assert_eq!(sanitize(given), expected);
        }
        case("report.pdf", "report.pdf");
        case("../../etc/passwd", "passwd");
        case("..\\..\\boot.ini", "boot.ini");
        case(".hidden", "hidden");
        case("...", "upload");
        case("a..b.txt", "a.b.txt");
        case("bad\u{0}na\nme\t.pdf", "badname.pdf");
        case("", "upload");
        case("/", "upload");
        assert_eq!(sanitize(&"é".repeat(300)).len(), MAX_NAME);
    }

    #[tokio::test]
    async fn taken_names_get_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = create_unique(dir.path(), "a.pdf").await.unwrap();
        let (second, _) = create_unique(dir.path(), "a.pdf").await.unwrap();
        let (third, _) = create_unique(dir.path(), "noext").await.unwrap();
        let (fourth, _) = create_unique(dir.path(), "noext").await.unwrap();
        assert_eq!(first.file_name().unwrap(), "a.pdf");
        assert_eq!(second.file_name().unwrap(), "a-1.pdf");
        assert_eq!(third.file_name().unwrap(), "noext");
        assert_eq!(fourth.file_name().unwrap(), "noext-1");
    }
}

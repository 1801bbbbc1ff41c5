//! A webhook's body: JSON, a form, text, or a `multipart/form-data` upload whose files are
//! streamed to disk chunk by chunk — never held whole in memory — into the run's workspace
//! (`<data>/runs/<run id>/uploads/`).
//!
//! Bounds ([`BodyLimits`]): a body held in memory (JSON, form, text) at most
//! `limits.max_body_bytes`, read within `limits.body_timeout`; an upload at most
//! `limits.max_upload_bytes` (framing included) with at most `limits.max_upload_files` files
//! and [`MAX_FORM_FIELDS`] text fields of `limits.max_body_bytes` in all, no gap between two
//! pieces longer than `limits.body_timeout`. Past a size: `413 payload_too_large`; a stalled
//! body: `408 request_timeout`. Every file written so far is then removed with the workspace
//! ([`Workspace`] removes it unless the run was recorded). When the body must be verified
//! first (`hmac`), its files wait outside the run's workspace until the signature holds.
//! File names are sanitised: the last path component only, no control characters, no
//! leading dots, no `..`; a name already taken gets `-1`, `-2`, … before its extension.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::Refused;
use super::auth::BodyMac;
use crate::error::{ApiError, Code};
use crate::limits::{BodyLimits, MAX_FORM_FIELDS};

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
/// was made for was recorded ([`Workspace::keep`]). Uploads of a body still to be verified
/// are written to a folder beside it (`runs/.unverified-<id>`) and moved in by
/// [`Workspace::admit`].
pub(super) struct Workspace {
    dir: PathBuf,
    unverified: Option<PathBuf>,
    made: bool,
    keep: bool,
}

impl Workspace {
    /// The workspace of run `id` under `runs`; `verify_first` when the body's signature is
    /// checked after it is read.
    pub(super) fn new(runs: &Path, id: &str, verify_first: bool) -> Self {
        Self {
            dir: runs.join(id),
            unverified: verify_first.then(|| runs.join(format!(".unverified-{id}"))),
            made: false,
            keep: false,
        }
    }

    /// The run now owns it.
    pub(super) fn keep(&mut self) {
        self.keep = true;
    }

    /// Where uploads are recorded as being: the run's `uploads` folder.
    fn uploads(&self) -> PathBuf {
        self.dir.join("uploads")
    }

    /// Where uploads are written now: the run's `uploads` folder, or the unverified one.
    async fn write_dir(&mut self) -> std::io::Result<PathBuf> {
        let dir = match &self.unverified {
            Some(unverified) => unverified.join("uploads"),
            None => self.uploads(),
        };
        if !self.made {
            self.made = true;
            tokio::fs::create_dir_all(&dir).await?;
        }
        Ok(dir)
    }

    /// The body was verified: its uploads move into the run's workspace.
    pub(super) async fn admit(&mut self) -> std::io::Result<()> {
        let Some(unverified) = self.unverified.take() else {
            return Ok(());
        };
        if self.made {
            tokio::fs::create_dir_all(&self.dir).await?;
            tokio::fs::rename(unverified.join("uploads"), self.uploads()).await?;
            tokio::fs::remove_dir(&unverified).await?;
        }
        Ok(())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        // Runs on refusal and on a dropped connection alike; the folders are the request's.
        let refused = (!self.keep).then_some(&self.dir);
        for dir in refused.into_iter().chain(self.unverified.as_ref()) {
            if let Err(error) = std::fs::remove_dir_all(dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %error, "Cannot remove a refused upload.");
            }
        }
    }
}

fn too_large(limit: u64, setting: &str) -> Refused {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the body is larger than {limit} bytes (`limits.{setting}`)"),
    )
    .with_details(serde_json::json!({ "limit": limit }))
    .into()
}

fn too_many(what: &str, limit: usize, setting: Option<&str>) -> Refused {
    let setting = setting
        .map(|s| format!(" (`limits.{s}`)"))
        .unwrap_or_default();
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the upload holds more than {limit} {what}{setting}"),
    )
    .with_details(serde_json::json!({ "limit": limit }))
    .into()
}

fn stalled(after: Duration) -> Refused {
    ApiError::new(
        Code::RequestTimeout,
        format!(
            "the body did not arrive within {} s (`limits.body_timeout`)",
            after.as_secs()
        ),
    )
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

/// Reads the body by its content type, within `limits`.
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &BodyLimits,
    workspace: &mut Workspace,
    mac: Option<&mut BodyMac>,
) -> Result<Payload, Refused> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
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
    if mime == "multipart/form-data" {
        if declared.is_some_and(|n| n > limits.upload) {
            return Err(too_large(limits.upload, "max_upload_bytes"));
        }
        let mut meter = Meter {
            total: 0,
            limit: limits.upload,
            over: false,
            mac,
        };
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
        let stream = body.into_data_stream().map(|chunk| meter.feed(chunk));
        let read = multipart(stream, &boundary, workspace, limits).await;
        return match read {
            Err(_) if meter.over => Err(too_large(limits.upload, "max_upload_bytes")),
            other => other,
        };
    }
    let limit = u64::try_from(limits.body).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit, "max_body_bytes"));
    }
    let mut meter = Meter {
        total: 0,
        limit,
        over: false,
        mac,
    };
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    let whole = async {
        while let Some(chunk) = stream.next().await {
            let chunk = meter.feed(chunk).map_err(|e| {
                if meter.over {
                    too_large(limit, "max_body_bytes")
                } else {
                    ApiError::bad_request(format!("cannot read the body: {e}")).into()
                }
            })?;
            bytes.extend_from_slice(&chunk);
        }
        Ok::<(), Refused>(())
    };
    tokio::time::timeout(limits.read_timeout, whole)
        .await
        .map_err(|_| stalled(limits.read_timeout))??;
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

/// Reads a multipart body: text parts as fields, file parts streamed to the workspace; no
/// wait for the next piece longer than `limits.read_timeout`.
async fn multipart<S>(
    stream: S,
    boundary: &str,
    workspace: &mut Workspace,
    limits: &BodyLimits,
) -> Result<Payload, Refused>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    let gap = limits.read_timeout;
    let bad = |e: multer::Error| -> Refused {
        ApiError::bad_request(format!("invalid multipart body: {e}")).into()
    };
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    let mut files = Vec::new();
    let mut text_bytes = 0usize;
    while let Some(mut field) = within(gap, parts.next_field()).await?.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            if fields.len() >= MAX_FORM_FIELDS {
                return Err(too_many("text fields", MAX_FORM_FIELDS, None));
            }
            let mut text = Vec::new();
            while let Some(chunk) = within(gap, field.chunk()).await?.map_err(bad)? {
                text_bytes += chunk.len();
                if text_bytes > limits.body {
                    return Err(too_many(
                        "bytes of text fields",
                        limits.body,
                        Some("max_body_bytes"),
                    ));
                }
                text.extend_from_slice(&chunk);
            }
            fields.push((name, String::from_utf8_lossy(&text).into_owned()));
            continue;
        };
        if files.len() >= limits.files {
            return Err(too_many("files", limits.files, Some("max_upload_files")));
        }
        let dir = workspace.write_dir().await.map_err(ApiError::internal)?;
        let (written, file) = create_unique(&dir, &sanitize(&file_name))
            .await
            .map_err(ApiError::internal)?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut bytes = 0u64;
        while let Some(chunk) = within(gap, field.chunk()).await?.map_err(bad)? {
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        out.flush().await.map_err(ApiError::internal)?;
        let path = workspace
            .uploads()
            .join(written.file_name().unwrap_or_default());
        files.push(Saved {
            field: name,
            path,
            bytes,
        });
    }
    Ok(Payload::Form(fields, files))
}

/// `read`, or `408` when it takes longer than `gap`.
async fn within<T>(gap: Duration, read: impl Future<Output = T>) -> Result<T, Refused> {
    tokio::time::timeout(gap, read)
        .await
        .map_err(|_| stalled(gap))
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

//! How much a request may send, and how slowly: the bounds every body is read under, checked
//! before anything is parsed, so a hostile client costs at most these bytes and this time.

use std::time::Duration;

/// The bounds of request bodies.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// An API body, and a webhook's body that is not a file upload (JSON, form, text): held
    /// in memory, so small (`limits.max_body_bytes`, default 1 MiB).
    pub body: usize,
    /// A login or a job's callback: a few fields (64 KiB).
    pub small: usize,
    /// A webhook's multipart upload, framing included; its files are streamed to disk
    /// (`limits.max_upload_bytes`, default 512 MiB).
    pub upload: u64,
    /// The files one upload may hold (`limits.max_upload_files`, default 100).
    pub files: usize,
    /// How long a webhook body may take to arrive: the whole of one that is not an upload,
    /// the gap between two pieces of an upload (`limits.body_timeout`, default 30 s).
    /// Past it: `408`.
    pub read_timeout: Duration,
}

/// The text fields one multipart body may hold besides its files.
pub(crate) const MAX_FORM_FIELDS: usize = 1000;

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            body: 1024 * 1024,
            small: 64 * 1024,
            upload: 512 * 1024 * 1024,
            files: 100,
            read_timeout: Duration::from_secs(30),
        }
    }
}

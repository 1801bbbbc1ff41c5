//! One file operation, run on a blocking thread: every path is confined first, then touched.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use octoflow_core::error::BoxError;
use octoflow_core::fs::{FilesRoot, PathError, SafePath, write_atomic};
use serde_json::{Value, json};

use super::codec::{self, EncodeError, Existing};
use super::settings::Format;

/// The largest file a step reads (256 MiB): parsed formats are held in memory whole.
pub(super) const MAX_READ_BYTES: u64 = 256 * 1024 * 1024;

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileError {
    /// The path leaves the allowed directories.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The file to read, move or copy is not there.
    #[error("file `{path}` does not exist")]
    Missing {
        /// The path as given.
        path: String,
    },
    /// The file is larger than a step reads.
    #[error("file `{path}` is {size} bytes, more than the {limit} bytes a step reads")]
    TooLarge {
        /// The path as given.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The content does not parse in the format.
    #[error("cannot parse file `{path}` as {format}")]
    Parse {
        /// The path as given.
        path: String,
        /// The format's name.
        format: &'static str,
        /// The parser's error.
        #[source]
        source: BoxError,
    },
    /// The value does not fit the format.
    #[error("cannot write file `{path}` as {format}")]
    Encode {
        /// The path as given.
        path: String,
        /// The format's name.
        format: &'static str,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// The operating system refused.
    #[error("cannot {action} file `{path}`")]
    Io {
        /// What was being done (`read`, `write`, …).
        action: &'static str,
        /// The path as given.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// Whether another attempt may succeed (only the operating system's errors).
    pub(super) fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

/// What to do to the file, with the settings it needs.
#[derive(Debug)]
pub(super) enum Action {
    /// Read and parse.
    Read,
    /// Replace with this value.
    Write(Value),
    /// Add this value to the end.
    Append(Value),
    /// Remove.
    Delete,
    /// Tell whether it exists.
    Exists,
    /// Rename to this path (rendered `to`).
    Move(String),
    /// Copy to this path (rendered `to`).
    Copy(String),
}

/// A file operation with its settings rendered.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) action: Action,
    pub(super) format: Format,
    /// `path` as rendered, relative to the data directory or absolute.
    pub(super) path: String,
}

impl Op {
    /// Confines `path` and `to`, then does the work. Blocking: call from a blocking thread.
    pub(super) fn execute(self, files: &FilesRoot) -> Result<Value, FileError> {
        let path = files.resolve(&self.path)?;
        match &self.action {
            Action::Read => self.read(&path),
            Action::Write(value) => self.write(&path, value),
            Action::Append(value) => self.append(&path, value),
            Action::Delete => match fs::remove_file(&path) {
                Ok(()) => Ok(json!({ "path": self.path, "deleted": true })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    Ok(json!({ "path": self.path, "deleted": false }))
                }
                Err(e) => Err(self.io("delete", e)),
            },
            Action::Exists => {
                let exists = fs::exists(&path).map_err(|e| self.io("inspect", e))?;
                Ok(json!({ "path": self.path, "exists": exists }))
            }
            Action::Move(to) => self.transfer(&path, &files.resolve(to)?, to, true),
            Action::Copy(to) => self.transfer(&path, &files.resolve(to)?, to, false),
        }
    }

    fn io(&self, action: &'static str, source: io::Error) -> FileError {
        if source.kind() == io::ErrorKind::NotFound && action != "write" {
            return FileError::Missing {
                path: self.path.clone(),
            };
        }
        FileError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self, path: &SafePath) -> Result<Value, FileError> {
        let file = fs::File::open(path).map_err(|e| self.io("read", e))?;
        let size = file.metadata().map_err(|e| self.io("read", e))?.len();
        if size > MAX_READ_BYTES {
            return Err(FileError::TooLarge {
                path: self.path.clone(),
                size,
                limit: MAX_READ_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("read", e))?;
        codec::decode(self.format, bytes).map_err(|source| FileError::Parse {
            path: self.path.clone(),
            format: self.format.as_str(),
            source,
        })
    }

    fn encode_error(&self, source: EncodeError) -> FileError {
        FileError::Encode {
            path: self.path.clone(),
            format: self.format.as_str(),
            source,
        }
    }

    fn write(&self, path: &SafePath, value: &Value) -> Result<Value, FileError> {
        let bytes = codec::encode(self.format, value).map_err(|e| self.encode_error(e))?;
        write_atomic(path.as_path(), &bytes).map_err(|e| self.io("write", e))?;
        Ok(json!({ "path": self.path, "bytes": bytes.len() }))
    }

    fn append(&self, path: &SafePath, value: &Value) -> Result<Value, FileError> {
        let existing = self.existing(path.as_path())?;
        let bytes = codec::encode_append(self.format, value, &existing)
            .map_err(|e| self.encode_error(e))?;
        if let Some(dir) = path.as_path().parent() {
            fs::create_dir_all(dir).map_err(|e| self.io("write", e))?;
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| self.io("write", e))?;
        file.write_all(&bytes).map_err(|e| self.io("write", e))?;
        file.sync_data().map_err(|e| self.io("write", e))?;
        Ok(json!({ "path": self.path, "bytes": bytes.len() }))
    }

    /// How the file to append to ends, and its csv header.
    fn existing(&self, path: &Path) -> Result<Existing, FileError> {
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Existing {
                    empty: true,
                    ..Existing::default()
                });
            }
            Err(e) => return Err(self.io("read", e)),
        };
        let len = file.metadata().map_err(|e| self.io("read", e))?.len();
        if len == 0 {
            return Ok(Existing {
                empty: true,
                ..Existing::default()
            });
        }
        let mut last = [0_u8];
        file.seek(SeekFrom::End(-1))
            .map_err(|e| self.io("read", e))?;
        file.read_exact(&mut last).map_err(|e| self.io("read", e))?;
        let mut existing = Existing {
            empty: false,
            needs_newline: last[0] != b'\n',
            csv_header: None,
        };
        if self.format == Format::Csv {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| self.io("read", e))?;
            let header = codec::csv_header(file).map_err(|source| FileError::Parse {
                path: self.path.clone(),
                format: "csv",
                source,
            })?;
            existing.csv_header = Some(header);
        }
        Ok(existing)
    }

    fn transfer(
        &self,
        from: &SafePath,
        to: &SafePath,
        shown_to: &str,
        rename: bool,
    ) -> Result<Value, FileError> {
        let action = if rename { "move" } else { "copy" };
        let meta = fs::metadata(from).map_err(|e| self.io(action, e))?;
        if !meta.is_file() {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(self.io(action, source));
        }
        if let Some(dir) = to.as_path().parent() {
            fs::create_dir_all(dir).map_err(|e| self.io(action, e))?;
        }
        let result = json!({ "path": self.path, "to": shown_to });
        if rename {
            match fs::rename(from, to) {
                Ok(()) => return Ok(result),
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
                Err(e) => return Err(self.io(action, e)),
            }
        }
        copy_atomic(from.as_path(), to.as_path()).map_err(|e| self.io(action, e))?;
        if rename {
            fs::remove_file(from).map_err(|e| self.io(action, e))?;
        }
        Ok(result)
    }
}

/// Copies into a temporary file beside the target, then renames it into place, keeping
/// the source's permissions.
fn copy_atomic(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().unwrap_or_else(|| Path::new("."));
    let mut source = fs::File::open(from)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".octoflow-")
        .tempfile_in(dir)?;
    io::copy(&mut source, tmp.as_file_mut())?;
    tmp.as_file()
        .set_permissions(source.metadata()?.permissions())?;
    tmp.as_file().sync_data()?;
    tmp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

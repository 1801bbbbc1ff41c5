//! Where the rows of a statement go: into the step's result, or — with `save_to` — into a
//! file of JSON lines, written a batch at a time so memory stays bounded.

use std::path::PathBuf;

use futures::{Stream, TryStreamExt};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::error::SqlError;

/// Rows as they are read, a batch at a time.
pub(crate) enum RowSink {
    /// Kept for the result.
    Memory(Vec<Value>),
    /// Written to a file.
    File {
        /// The path as the step wrote it, for the result and messages.
        shown: String,
        writer: BufWriter<tokio::fs::File>,
        /// Lines not yet written.
        pending: Vec<u8>,
        rows: u64,
    },
}

impl RowSink {
    /// A sink keeping the rows.
    pub(crate) fn memory() -> Self {
        Self::Memory(Vec::new())
    }

    /// A sink writing the rows to `path` (created or truncated).
    pub(crate) async fn file(shown: String, path: PathBuf) -> Result<Self, SqlError> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| save_error(&shown, &e))?;
        }
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| save_error(&shown, &e))?;
        Ok(Self::File {
            shown,
            writer: BufWriter::new(file),
            pending: Vec::new(),
            rows: 0,
        })
    }

    /// Takes a batch of rows.
    pub(crate) async fn push(&mut self, batch: Vec<Map<String, Value>>) -> Result<(), SqlError> {
        match self {
            Self::Memory(rows) => rows.extend(batch.into_iter().map(Value::Object)),
            Self::File {
                shown,
                writer,
                pending,
                rows,
                ..
            } => {
                pending.clear();
                for row in &batch {
                    serde_json::to_writer(&mut *pending, row).map_err(|e| save_error(shown, &e))?;
                    pending.push(b'\n');
                }
                writer
                    .write_all(pending)
                    .await
                    .map_err(|e| save_error(shown, &e))?;
                *rows += batch.len() as u64;
            }
        }
        Ok(())
    }

    /// Takes every row of `rows`, turned into JSON by `to_json`, `batch_size` at a time.
    pub(crate) async fn drain<R>(
        &mut self,
        mut rows: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
        index: usize,
        batch_size: usize,
        to_json: impl Fn(&R, usize) -> Result<Map<String, Value>, SqlError>,
    ) -> Result<(), SqlError> {
        let mut batch = Vec::with_capacity(batch_size.min(4096));
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| SqlError::statement(index, &e))?
        {
            batch.push(to_json(&row, index)?);
            if batch.len() >= batch_size {
                self.push(std::mem::take(&mut batch)).await?;
            }
        }
        self.push(batch).await
    }

    /// The step's result for a statement that returned rows.
    pub(crate) async fn finish(self) -> Result<Value, SqlError> {
        match self {
            Self::Memory(rows) => {
                let count = rows.len();
                Ok(json!({"rows": rows, "row_count": count}))
            }
            Self::File {
                shown,
                mut writer,
                rows,
                ..
            } => {
                writer.flush().await.map_err(|e| save_error(&shown, &e))?;
                writer
                    .into_inner()
                    .sync_all()
                    .await
                    .map_err(|e| save_error(&shown, &e))?;
                Ok(json!({"path": shown, "row_count": rows}))
            }
        }
    }
}

fn save_error(shown: &str, error: &dyn std::error::Error) -> SqlError {
    SqlError::Save {
        path: shown.to_owned(),
        message: octoflow_core::error::chain(error),
    }
}

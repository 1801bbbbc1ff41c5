//! A step attempt's log: lines go, in order and timestamped, to the run's log writer.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::store::{LogLine, LogStream, RunId};

/// Where a step writes its log lines. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StepLog {
    tx: mpsc::Sender<LogLine>,
    run_id: RunId,
    step: Arc<str>,
    attempt: u32,
    /// Drops every line: the log of a `private` step.
    muted: bool,
}

impl StepLog {
    pub(crate) fn new(tx: mpsc::Sender<LogLine>, run_id: RunId, step: &str, attempt: u32) -> Self {
        Self {
            tx,
            run_id,
            step: step.into(),
            attempt,
            muted: false,
        }
    }

    /// The same log, dropping every line (a `private` step's output is not kept).
    #[must_use]
    pub(crate) fn muted(mut self) -> Self {
        self.muted = true;
        self
    }

    /// Writes one line (without its line break). Waits when the writer is behind, so a
    /// chatty process cannot grow memory without bound.
    pub async fn line(&self, stream: LogStream, text: impl Into<String>) {
        if self.muted {
            return;
        }
        let line = LogLine {
            run_id: self.run_id,
            step: self.step.to_string(),
            attempt: self.attempt,
            ts: Utc::now(),
            stream,
            line: text.into(),
            seq: 0,
        };
        // The writer lives as long as the run; a closed channel means the run is over.
        let _ = self.tx.send(line).await;
    }

    /// Writes a line of the engine's own.
    pub async fn note(&self, text: impl Into<String>) {
        self.line(LogStream::Engine, text).await;
    }
}

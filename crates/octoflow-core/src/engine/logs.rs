//! The run's log writer: batches lines from every step into the store.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::recording::Recording;
use super::{Observer, Redactor, RunEvent};
use crate::store::{LogLine, Store};

/// Lines waiting for the writer; a full queue makes chatty steps wait (bounded memory).
const QUEUE: usize = 1024;
/// Most lines written in one store call.
const BATCH: usize = 512;

/// The queue a run's steps send their lines to, for [`write`].
pub(super) fn queue() -> (mpsc::Sender<LogLine>, mpsc::Receiver<LogLine>) {
    mpsc::channel(QUEUE)
}

/// Writes the lines from `lines` in batches; ends once every sender is dropped and all
/// lines are stored. Run beside the steps in their task. The observer hears of every stored
/// batch. A run not recorded yet is recorded before its first lines.
pub(super) async fn write(
    store: Arc<dyn Store>,
    recording: Arc<Recording>,
    redactor: Redactor,
    observer: Option<Arc<dyn Observer>>,
    mut lines: mpsc::Receiver<LogLine>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while lines.recv_many(&mut batch, BATCH).await > 0 {
        for line in &mut batch {
            if let std::borrow::Cow::Owned(masked) = redactor.text(&line.line) {
                line.line = masked;
            }
        }
        let stored = match recording.ensure().await {
            Ok(()) => store.append_logs(&batch).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            tracing::warn!(error = %crate::error::chain(&error), lines = batch.len(), "Cannot store log lines.");
        } else if let Some(observer) = &observer {
            observer.on_event(&RunEvent::LogsStored { lines: batch.len() });
        }
        batch.clear();
    }
}

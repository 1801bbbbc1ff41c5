//! The `step_logs` table: timestamped lines of step attempts, kept in insertion order.

use octoflow_core::store::{LogLine, RunId, StoreError};
use rusqlite::{Connection, Row, params};

use crate::codec;
use crate::query::{all, execute};

/// Appends a batch of lines (the caller's transaction makes it one change).
pub(crate) fn append(conn: &Connection, lines: &[LogLine]) -> Result<(), StoreError> {
    for line in lines {
        execute(
            conn,
            "INSERT INTO step_logs (run_id, step, attempt, ts, stream, line) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![
                codec::run_id(&line.run_id),
                line.step,
                line.attempt,
                codec::time(line.ts),
                line.stream.as_str(),
                line.line,
            ],
        )?;
    }
    Ok(())
}

/// A run's lines in the order they were appended, optionally of one step, after the line
/// `after` (a range of the run's index: lines already read are not visited again).
pub(crate) fn list(
    conn: &Connection,
    id: &RunId,
    step: Option<&str>,
    after: i64,
) -> Result<Vec<LogLine>, StoreError> {
    match step {
        None => all(
            conn,
            "SELECT seq, run_id, step, attempt, ts, stream, line FROM step_logs \
             WHERE run_id = ? AND seq > ? ORDER BY seq",
            params![codec::run_id(id), after],
            decode,
        ),
        Some(step) => all(
            conn,
            "SELECT seq, run_id, step, attempt, ts, stream, line FROM step_logs \
             WHERE run_id = ? AND seq > ? AND step = ? ORDER BY seq",
            params![codec::run_id(id), after, step],
            decode,
        ),
    }
}

fn decode(row: &Row<'_>) -> Result<LogLine, StoreError> {
    Ok(LogLine {
        run_id: codec::get_word(row, "run_id")?,
        step: codec::get_text(row, "step")?,
        attempt: codec::get_attempt(row)?,
        ts: codec::get_time(row, "ts")?,
        stream: codec::get_word(row, "stream")?,
        line: codec::get_text(row, "line")?,
        seq: u64::try_from(codec::get::<i64>(row, "seq")?).unwrap_or_default(),
    })
}

//! The `step_logs` table: timestamped lines of step attempts, kept in insertion order.

use octoflow_core::store::{LogLine, RunId, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::codec;
use crate::error::from_sqlx;

/// Lines per `INSERT`: 6 values each, far below `SQLite`'s bound-parameter limit, and few
/// enough distinct statement shapes to stay in the prepared-statement cache.
const LINES_PER_INSERT: usize = 50;

/// Appends a batch of lines in one write transaction.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    lines: &[LogLine],
) -> Result<(), StoreError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    for chunk in lines.chunks(LINES_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO step_logs (run_id, step, attempt, ts, stream, line) ",
        );
        insert.push_values(chunk, |mut row, line| {
            row.push_bind(codec::run_id(&line.run_id))
                .push_bind(line.step.clone())
                .push_bind(i64::from(line.attempt))
                .push_bind(codec::time(line.ts))
                .push_bind(line.stream.as_str())
                .push_bind(line.line.clone());
        });
        insert.build().execute(&mut *tx).await.map_err(from_sqlx)?;
    }
    tx.commit().await.map_err(from_sqlx)
}

/// A run's lines in the order they were appended, optionally of one step.
pub(crate) async fn list(
    pool: &SqlitePool,
    id: &RunId,
    step: Option<&str>,
) -> Result<Vec<LogLine>, StoreError> {
    let query = match step {
        None => sqlx::query(
            "SELECT run_id, step, attempt, ts, stream, line FROM step_logs \
             WHERE run_id = ? ORDER BY seq",
        )
        .bind(codec::run_id(id)),
        Some(step) => sqlx::query(
            "SELECT run_id, step, attempt, ts, stream, line FROM step_logs \
             WHERE run_id = ? AND step = ? ORDER BY seq",
        )
        .bind(codec::run_id(id))
        .bind(step.to_owned()),
    };
    query
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(decode)
        .collect()
}

fn decode(row: &SqliteRow) -> Result<LogLine, StoreError> {
    Ok(LogLine {
        run_id: codec::get_word(row, "run_id")?,
        step: codec::get_text(row, "step")?,
        attempt: codec::get_attempt(row)?,
        ts: codec::get_time(row, "ts")?,
        stream: codec::get_word(row, "stream")?,
        line: codec::get_text(row, "line")?,
    })
}

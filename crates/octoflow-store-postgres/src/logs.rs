//! The `step_logs` table: timestamped lines of step attempts, in the order they were
//! appended.
//!
//! A follower reads a run's lines after the last place it has, so within a run a line must
//! never commit after a line with a higher place has been read: places are handed out by an
//! identity column as rows are inserted, not as transactions commit. An append therefore
//! takes, before it inserts anything, a transaction-level advisory lock per run it writes
//! (in a fixed order): appends for one run — its executor's, a callback's answered on another
//! node — take turns, and each commits before the next draws its places.

use chrono::{DateTime, Utc};
use octoflow_core::store::{LogLine, RunId, StoreError};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use crate::codec;
use crate::error::from_sqlx;

/// Log lines as one array per column, bound to an `unnest` that inserts them in one
/// statement, in order.
#[derive(Debug, Default)]
pub(crate) struct Columns<'a> {
    pub(crate) run_id: Vec<uuid::Uuid>,
    pub(crate) step: Vec<&'a str>,
    pub(crate) attempt: Vec<i32>,
    pub(crate) ts: Vec<DateTime<Utc>>,
    pub(crate) stream: Vec<&'static str>,
    pub(crate) line: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    /// The columns of `lines`, in order.
    pub(crate) fn of(lines: &'a [LogLine]) -> Self {
        let mut columns = Self::default();
        for line in lines {
            columns.run_id.push(line.run_id.0);
            columns.step.push(line.step.as_str());
            columns
                .attempt
                .push(i32::try_from(line.attempt).unwrap_or(i32::MAX));
            columns.ts.push(line.ts);
            columns.stream.push(line.stream.as_str());
            columns.line.push(line.line.as_str());
        }
        columns
    }
}

/// Appends a batch of lines in one statement (one transaction). `lock_prefix` starts the key
/// of each run's lock.
pub(crate) async fn append(
    pool: &PgPool,
    lock_prefix: &str,
    lines: &[LogLine],
) -> Result<(), StoreError> {
    let columns = Columns::of(lines);
    // The uncorrelated subquery of the `WHERE` runs once, before the first row is inserted:
    // the locks are held before any place is drawn, until the statement commits.
    sqlx::query(
        "WITH locked AS ( \
           SELECT pg_advisory_xact_lock(hashtextextended($1 || r.id::text, 0)) \
           FROM (SELECT DISTINCT unnest($2::uuid[]) AS id ORDER BY 1) AS r) \
         INSERT INTO step_logs (run_id, step, attempt, ts, stream, line) \
         SELECT l.run_id, l.step, l.attempt, l.ts, l.stream, l.line \
         FROM unnest($2::uuid[], $3::text[], $4::integer[], $5::timestamptz[], $6::text[], \
           $7::text[]) WITH ORDINALITY AS l (run_id, step, attempt, ts, stream, line, n) \
         WHERE (SELECT count(*) FROM locked) > 0 \
         ORDER BY l.n",
    )
    .bind(lock_prefix)
    .bind(columns.run_id)
    .bind(columns.step)
    .bind(columns.attempt)
    .bind(columns.ts)
    .bind(columns.stream)
    .bind(columns.line)
    .execute(pool)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// A run's lines in the order they were appended, optionally of one step, after the place
/// `after` (a range of the run's index: lines already read are not visited again).
pub(crate) async fn list(
    pool: &PgPool,
    id: &RunId,
    step: Option<&str>,
    after: i64,
) -> Result<Vec<LogLine>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, run_id, step, attempt, ts, stream, line FROM step_logs \
         WHERE run_id = $1 AND seq > $2 AND ($3::text IS NULL OR step = $3) ORDER BY seq",
    )
    .bind(id.0)
    .bind(after)
    .bind(step)
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    rows.iter().map(decode).collect()
}

/// A log line from a row with its `seq`, `run_id`, `step`, `attempt`, `ts`, `stream` and
/// `line` columns.
pub(crate) fn decode(row: &PgRow) -> Result<LogLine, StoreError> {
    Ok(LogLine {
        run_id: RunId(codec::get(row, "run_id")?),
        step: codec::get(row, "step")?,
        attempt: codec::get_attempt(row)?,
        ts: codec::get(row, "ts")?,
        stream: codec::get_word(row, "stream")?,
        line: codec::get(row, "line")?,
        seq: codec::get_unsigned(row, "seq")?,
    })
}

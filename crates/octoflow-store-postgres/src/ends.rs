//! Run ends, written in batches: the ends that arrive while one batch is being written go
//! out together as the next, in one statement and one commit.
//!
//! An end is the run's final update and the step attempts it recorded, under the run's fence
//! (`status = 'running' AND claim = <generation>`), all or nothing. Batching keeps that per
//! run: the statement updates each run whose fence still holds, inserts the step rows of
//! those runs only, and returns which ended; the others were fenced out. An end that arrives
//! when no batch is being written goes out at once, alone — batching adds no wait, it only
//! gathers what would otherwise queue for a connection. A batch that fails for any reason
//! but an unreachable server is written again one end at a time, so one run's bad record
//! cannot fail another's end.
//!
//! Why: on PostgreSQL a run's end is most of what a run costs the database — a statement,
//! its plan and a commit. With many runs ending at once, one statement and one commit for
//! all of them is a fraction of that cost per run (BENCHMARKS.md, "Many nodes").

use chrono::{DateTime, Utc};
use octoflow_core::store::{Fence, RunId, RunUpdate, StepRun, StoreError};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::error::from_sqlx;
use crate::{codec, steps};

/// The most ends written in one statement.
const BATCH: usize = 256;

/// The statement ending a batch of runs (`$1`–`$10`: the ends, one array per column; `$11`–
/// `$19`: their step attempts, `k` naming the end each belongs to; `$20`: the channel to
/// notify when an ended run frees a concurrency slot). Returns the `k` of each run that ended.
const END_BATCH: &str = "\
WITH ends AS ( \
    SELECT * FROM unnest($1::integer[], $2::uuid[], $3::bigint[], $4::text[], \
        $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[]) \
    AS e (k, id, claim, status, started_at, finished_at, error, data, node, message)), \
ended AS ( \
    UPDATE runs SET status = e.status, lease_until = NULL, \
        started_at = COALESCE(e.started_at, runs.started_at), \
        finished_at = COALESCE(e.finished_at, runs.finished_at), \
        error = COALESCE(e.error::json, runs.error), \
        data = COALESCE(e.data::json, runs.data), \
        node = COALESCE(e.node, runs.node), \
        message = COALESCE(e.message, runs.message) \
    FROM ends AS e \
    WHERE runs.id = e.id AND runs.status = 'running' AND runs.claim = e.claim \
    RETURNING e.k, runs.concurrency_key IS NOT NULL AND NOT runs.lock_released AS frees), \
recorded AS ( \
    INSERT INTO step_runs (run_id, step, attempt, status, started_at, finished_at, result, error) \
    SELECT s.run_id, s.step, s.attempt, s.status, s.started_at, s.finished_at, s.result::json, \
        s.error \
    FROM unnest($11::integer[], $12::uuid[], $13::text[], $14::integer[], $15::text[], \
        $16::timestamptz[], $17::timestamptz[], $18::text[], $19::text[]) WITH ORDINALITY \
        AS s (k, run_id, step, attempt, status, started_at, finished_at, result, error, n) \
    WHERE s.k IN (SELECT k FROM ended) ORDER BY s.n) \
SELECT ended.k FROM ended LEFT JOIN LATERAL \
    (SELECT pg_notify($20, '') WHERE ended.frees) AS woken ON true";

/// One run's end, encoded for the statement.
#[derive(Debug)]
pub(crate) struct End {
    id: uuid::Uuid,
    claim: i64,
    status: &'static str,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    data: Option<String>,
    node: Option<String>,
    message: Option<String>,
    steps: steps::Columns,
}

impl End {
    /// The end of the run `fence` holds: `update`, with the step attempts `ended` records.
    pub(crate) fn new(
        fence: &Fence,
        ended: &[StepRun],
        update: &RunUpdate,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id: fence.run.0,
            claim: codec::generation(fence.generation),
            status: update.status.as_str(),
            started_at: update.started_at,
            finished_at: update.finished_at,
            error: codec::opt_json("error", update.error.as_ref())?,
            data: codec::opt_json("data", update.data.as_ref())?,
            node: update.node.clone(),
            message: update.message.clone(),
            steps: steps::Columns::of(ended)?,
        })
    }
}

/// An end waiting for its batch, and where its outcome goes.
#[derive(Debug)]
struct Pending {
    end: End,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue of ends and the task writing them; the task stops with the last clone.
#[derive(Debug, Clone)]
pub(crate) struct Ends {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Ends {
    /// Starts the writing task on `pool`; ends that free a slot notify `channel`.
    pub(crate) fn start(pool: PgPool, channel: String) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool, channel, pending));
        Self { queue }
    }

    /// Writes `end` in the next batch; [`StoreError::Fenced`] when its run's fence no longer
    /// holds.
    pub(crate) async fn write(&self, end: End) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
        let gone = || StoreError::Unavailable("the store is shutting down".into());
        self.queue.send(Pending { end, done }).map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }
}

/// Writes the queued ends, a batch at a time, until every [`Ends`] is dropped.
async fn write_batches(pool: PgPool, channel: String, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let ends: Vec<&End> = batch.iter().map(|p| &p.end).collect();
        match write(&pool, &channel, &ends).await {
            Ok(ended) => {
                for (k, pending) in batch.drain(..).enumerate() {
                    let outcome = if ended.contains(&k) {
                        Ok(())
                    } else {
                        Err(StoreError::Fenced {
                            run: RunId(pending.end.id),
                        })
                    };
                    let _ = pending.done.send(outcome);
                }
            }
            Err(StoreError::Unavailable(source)) => {
                let text = octoflow_core::error::chain(&*source);
                for pending in batch.drain(..) {
                    let _ = pending
                        .done
                        .send(Err(StoreError::Unavailable(text.clone().into())));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some(pending) = batch.pop() {
                    let _ = pending.done.send(Err(error));
                }
            }
            Err(_) => {
                for pending in batch.drain(..) {
                    let outcome = write(&pool, &channel, &[&pending.end])
                        .await
                        .and_then(|ended| {
                            if ended.is_empty() {
                                Err(StoreError::Fenced {
                                    run: RunId(pending.end.id),
                                })
                            } else {
                                Ok(())
                            }
                        });
                    let _ = pending.done.send(outcome);
                }
            }
        }
    }
}

/// Writes `ends` in one statement; returns the positions of those whose run ended.
async fn write(pool: &PgPool, channel: &str, ends: &[&End]) -> Result<Vec<usize>, StoreError> {
    let mut k = Vec::with_capacity(ends.len());
    let mut steps = steps::Columns::default();
    let mut step_k = Vec::new();
    for (i, end) in ends.iter().enumerate() {
        let i = i32::try_from(i).unwrap_or(i32::MAX);
        k.push(i);
        step_k.extend(std::iter::repeat_n(i, end.steps.run_id.len()));
        steps.extend(&end.steps);
    }
    let rows = sqlx::query(END_BATCH)
        .bind(k)
        .bind(ends.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.claim).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.status).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.started_at).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.finished_at).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.error.as_deref()).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.data.as_deref()).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.node.as_deref()).collect::<Vec<_>>())
        .bind(
            ends.iter()
                .map(|e| e.message.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(step_k)
        .bind(steps.run_id)
        .bind(steps.step)
        .bind(steps.attempt)
        .bind(steps.status)
        .bind(steps.started_at)
        .bind(steps.finished_at)
        .bind(steps.result)
        .bind(steps.error)
        .bind(channel)
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?;
    rows.iter()
        .map(|row| {
            let k: i32 = row.try_get("k").map_err(from_sqlx)?;
            Ok(usize::try_from(k).unwrap_or(usize::MAX))
        })
        .collect()
}

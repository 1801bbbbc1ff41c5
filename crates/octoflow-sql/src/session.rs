//! One step's statements on one connection of a pool: a single statement into the step's
//! sink, or a list in one transaction; and, when the step is cancelled or times out, its
//! statement stopped on the server from a second session.

use octoflow_core::step::StepError;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, Pool};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::backend::{Backend, Conn, Done};
use crate::cancel::unless_cancelled;
use crate::error::{SqlError, driver_message};
use crate::output::RowSink;
use crate::settings::Statement;

/// What one step runs on one connection.
pub(crate) struct Session<'a> {
    pub(crate) connection: &'a str,
    pub(crate) statements: &'a [Statement],
    pub(crate) transaction: bool,
    pub(crate) batch_size: usize,
}

impl Session<'_> {
    fn lost(&self, error: &sqlx::Error) -> SqlError {
        SqlError::Connect {
            connection: self.connection.to_owned(),
            message: driver_message(error),
        }
    }

    /// Runs the statements on a connection of `pool`. When `token` is cancelled the
    /// statement is stopped on the server, and the connection is closed rather than handed
    /// back mid-statement or mid-transaction.
    pub(crate) async fn on<B: Backend>(
        &self,
        pool: &Pool<B::Db>,
        sink: RowSink,
        token: &CancellationToken,
    ) -> Result<Value, StepError>
    where
        for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    {
        let mut conn = tokio::select! {
            conn = pool.acquire() => conn.map_err(|e| self.lost(&e))?,
            () = token.cancelled() => return Err(StepError::Cancelled),
        };
        let id = B::session_id(&mut conn).await.map_err(|e| self.lost(&e))?;
        let options = pool.connect_options();
        let stop = async {
            let stopped = match <Conn<B> as Connection>::connect_with(&options).await {
                Ok(mut other) => B::stop(&mut other, id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stopped {
                warn!(connection = self.connection, session = %id, error = %driver_message(&e), "Cannot stop a cancelled statement.");
            }
        };
        let outcome = unless_cancelled(self.statements_on::<B>(&mut conn, sink), token, stop).await;
        if let Some(result) = outcome {
            return result;
        }
        conn.close_on_drop();
        Err(StepError::Cancelled)
    }

    /// One statement into `sink`, or every statement in one transaction.
    async fn statements_on<B: Backend>(
        &self,
        conn: &mut Conn<B>,
        mut sink: RowSink,
    ) -> Result<Value, StepError>
    where
        for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    {
        if !self.transaction {
            let statement = &self.statements[0];
            return match B::run(conn, 1, statement, &mut sink, self.batch_size).await? {
                Done::Rows => Ok(sink.finish().await?),
                Done::Affected(n) => Ok(json!({"rows_affected": n})),
            };
        }
        conn.execute("BEGIN").await.map_err(|e| self.lost(&e))?;
        let mut results = Vec::with_capacity(self.statements.len());
        let mut affected = 0;
        for (i, statement) in self.statements.iter().enumerate() {
            let mut rows = RowSink::memory();
            match B::run(conn, i + 1, statement, &mut rows, self.batch_size).await {
                Ok(Done::Rows) => results.push(rows.finish().await?),
                Ok(Done::Affected(n)) => {
                    affected += n;
                    results.push(json!({"rows_affected": n}));
                }
                Err(e) => {
                    if let Err(rollback) = conn.execute("ROLLBACK").await {
                        warn!(error = %driver_message(&rollback), "Rollback failed.");
                    }
                    return Err(e.into());
                }
            }
        }
        conn.execute("COMMIT").await.map_err(|e| self.lost(&e))?;
        Ok(json!({"results": results, "rows_affected": affected}))
    }
}

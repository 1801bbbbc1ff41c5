//! The `sql` kind: one statement, or several in one transaction, on a named connection.

use octoflow_core::step::prelude::*;
use sqlx::{Connection, Executor};
use tracing::warn;

use crate::cancel::unless_cancelled;
use crate::connections::{Connections, Pool};
use crate::error::{SqlError, driver_message};
use crate::output::RowSink;
use crate::postgres::Done;
use crate::settings::{SqlSettings, Statement};
use crate::{mysql, postgres};

/// The `sql` kind, with the node's connections.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    connections: Connections,
}

impl Sql {
    /// The kind, using `connections` (shared with every clone).
    pub fn new(connections: Connections) -> Self {
        Self { connections }
    }
}

impl StepKind for Sql {
    const NAME: &'static str = "sql";
    type Settings = SqlSettings;

    fn check(&self, settings: &SqlSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = settings.problems();
        if !self.connections.contains(&settings.connection) {
            let names: Vec<&str> = self.connections.names().collect();
            let hint =
                match octoflow_core::flow::suggest(&settings.connection, names.iter().copied()) {
                    Some(best) => format!("; did you mean `{best}`?"),
                    None if names.is_empty() => {
                        "; `connections:` in config.yml is empty".to_owned()
                    }
                    None => format!("; known: {}", names.join(", ")),
                };
            problems.push(Problem::at(
                "connection",
                format!("unknown connection `{}`{hint}", settings.connection),
            ));
        }
        problems
    }

    async fn run(&self, settings: &SqlSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let statements = settings.statements(cx)?;
        let sink = match &settings.save_to {
            Some(tpl) => {
                let shown = cx.render("save_to", tpl)?;
                let path = cx
                    .files()
                    .resolve(&shown)
                    .map_err(|e| StepError::fatal(format!("`save_to`: {e}")))?;
                RowSink::file(shown, path.as_path().to_path_buf()).await?
            }
            None => RowSink::memory(),
        };
        let session = Session {
            connection: &settings.connection,
            statements: &statements,
            transaction: settings.transaction,
            batch_size: settings.batch_size(),
        };
        let pool = self
            .connections
            .pool(&settings.connection, cx.secrets())
            .await?;
        let token = cx.cancel_token().clone();
        match pool {
            Pool::Postgres(pool) => session.on_postgres(&pool, sink, &token).await,
            Pool::MySql(pool) => session.on_mysql(&pool, sink, &token).await,
        }
    }
}

/// What one step runs on one connection.
struct Session<'a> {
    connection: &'a str,
    statements: &'a [Statement],
    transaction: bool,
    batch_size: usize,
}

/// Runs a session's statements on `$conn` with the backend module `$db`: one statement into
/// `$sink`, or all of them in a transaction. Written once for both backends, whose
/// connection types differ.
macro_rules! run_statements {
    ($self:ident, $db:ident, $conn:expr, $sink:ident) => {{
        let conn = $conn;
        if !$self.transaction {
            let statement = &$self.statements[0];
            return match $db::run(conn, 1, statement, &mut $sink, $self.batch_size).await? {
                Done::Rows => Ok($sink.finish().await?),
                Done::Affected(n) => Ok(json!({"rows_affected": n})),
            };
        }
        conn.execute("BEGIN").await.map_err(|e| $self.lost(&e))?;
        let mut results = Vec::with_capacity($self.statements.len());
        let mut affected = 0;
        for (i, statement) in $self.statements.iter().enumerate() {
            let mut rows = RowSink::memory();
            let done = $db::run(conn, i + 1, statement, &mut rows, $self.batch_size).await;
            match done {
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
        conn.execute("COMMIT").await.map_err(|e| $self.lost(&e))?;
        Ok(json!({"results": results, "rows_affected": affected}))
    }};
}

impl Session<'_> {
    fn lost(&self, error: &sqlx::Error) -> SqlError {
        SqlError::Connect {
            connection: self.connection.to_owned(),
            message: driver_message(error),
        }
    }

    async fn on_postgres(
        &self,
        pool: &sqlx::PgPool,
        mut sink: RowSink,
        token: &tokio_util::sync::CancellationToken,
    ) -> Result<Value, StepError> {
        let mut conn = tokio::select! {
            conn = pool.acquire() => conn.map_err(|e| self.lost(&e))?,
            () = token.cancelled() => return Err(StepError::Cancelled),
        };
        let id = postgres::backend_id(&mut conn)
            .await
            .map_err(|e| self.lost(&e))?;
        let options = pool.connect_options();
        let stop = async {
            let stopped = match sqlx::PgConnection::connect_with(&options).await {
                Ok(mut other) => postgres::cancel(&mut other, id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stopped {
                warn!(connection = self.connection, error = %driver_message(&e), "Cannot stop a cancelled statement.");
            }
        };
        let work = async { run_statements!(self, postgres, &mut *conn, sink) };
        let outcome = unless_cancelled(work, token, stop).await;
        finish(outcome, || conn.close_on_drop())
    }

    async fn on_mysql(
        &self,
        pool: &sqlx::MySqlPool,
        mut sink: RowSink,
        token: &tokio_util::sync::CancellationToken,
    ) -> Result<Value, StepError> {
        let mut conn = tokio::select! {
            conn = pool.acquire() => conn.map_err(|e| self.lost(&e))?,
            () = token.cancelled() => return Err(StepError::Cancelled),
        };
        let id = mysql::backend_id(&mut conn)
            .await
            .map_err(|e| self.lost(&e))?;
        let options = pool.connect_options();
        let stop = async {
            let stopped = match sqlx::MySqlConnection::connect_with(&options).await {
                Ok(mut other) => mysql::cancel(&mut other, id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stopped {
                warn!(connection = self.connection, error = %driver_message(&e), "Cannot stop a cancelled statement.");
            }
        };
        let work = async { run_statements!(self, mysql, &mut *conn, sink) };
        let outcome = unless_cancelled(work, token, stop).await;
        finish(outcome, || conn.close_on_drop())
    }
}

/// The step's end: the statements' outcome, or — when cancelled — `Cancelled`, with the
/// connection closed rather than handed back mid-statement or mid-transaction.
fn finish(
    outcome: Option<Result<Value, StepError>>,
    close: impl FnOnce(),
) -> Result<Value, StepError> {
    if let Some(result) = outcome {
        return result;
    }
    close();
    Err(StepError::Cancelled)
}

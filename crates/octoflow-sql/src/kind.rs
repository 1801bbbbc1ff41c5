//! The `sql` kind: one statement, or several in one transaction, on a named connection.

use octoflow_core::step::prelude::*;

use crate::connections::{Connections, Pool};
use crate::mysql::MySql;
use crate::output::RowSink;
use crate::postgres::Postgres;
use crate::session::Session;
use crate::settings::SqlSettings;

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
            Pool::Postgres(pool) => session.on::<Postgres>(&pool, sink, &token).await,
            Pool::MySql(pool) => session.on::<MySql>(&pool, sink, &token).await,
        }
    }
}

//! The settings of a `sql` step.

use octoflow_core::step::prelude::*;

/// How many rows are read and converted at a time when `batch_size` is not set.
pub(crate) const DEFAULT_BATCH_SIZE: usize = 1000;

/// The settings of a `sql` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSettings {
    /// The name of a connection in the node's `connections:`.
    pub(crate) connection: String,
    /// The statement, with placeholders in the database's own syntax (`$1` for PostgreSQL,
    /// `?` for MySQL/MariaDB). Not a template: values go in `params`. With
    /// `transaction: true`, a list of `{query, params}` run in one transaction.
    pub(crate) query: QuerySetting,
    /// The values bound to the placeholders, in order (templates; a whole `{{ … }}` keeps
    /// its type). Never spliced into the text: a value that looks like SQL stays a value.
    #[serde(default)]
    pub(crate) params: Option<Tpl<Vec<Value>>>,
    /// Runs the statements of `query` (a list) in one transaction: all of them or none.
    #[serde(default)]
    pub(crate) transaction: bool,
    /// How many rows are read and converted at a time (default 1000); with `save_to`, also
    /// how many are written to the file at a time.
    #[serde(default)]
    pub(crate) batch_size: Option<usize>,
    /// Writes the rows to this file, one JSON object per line, instead of keeping them in
    /// the result: memory stays bounded whatever the number of rows. The result is then
    /// `{path, row_count}`.
    #[serde(default)]
    pub(crate) save_to: Option<Tpl<String>>,
}

/// `query`: one statement, or a list for a transaction.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum QuerySetting {
    /// One statement; its values come from the step's `params`.
    One(String),
    /// Several statements, each with its own values.
    Many(Vec<StatementSetting>),
}

/// One statement of a transaction.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatementSetting {
    /// The statement.
    pub(crate) query: String,
    /// Its values, bound in order.
    #[serde(default)]
    pub(crate) params: Option<Tpl<Vec<Value>>>,
}

/// A statement ready to run: its text and its rendered values.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

impl SqlSettings {
    /// Problems found when the flow loads.
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (&self.query, self.transaction) {
            (QuerySetting::Many(_), false) => problems.push(Problem::at(
                "query",
                "a list of statements needs `transaction: true`",
            )),
            (QuerySetting::One(_), true) => problems.push(Problem::at(
                "query",
                "`transaction: true` needs `query` to be a list of `{query, params}`",
            )),
            (QuerySetting::Many(list), true) => {
                if list.is_empty() {
                    problems.push(Problem::at("query", "the list of statements is empty"));
                }
                if self.params.is_some() {
                    problems.push(Problem::at(
                        "params",
                        "with `transaction: true`, each statement has its own `params`",
                    ));
                }
            }
            (QuerySetting::One(text), false) if text.trim().is_empty() => {
                problems.push(Problem::at("query", "the statement is empty"));
            }
            (QuerySetting::One(_), false) => {}
        }
        if self.batch_size == Some(0) {
            problems.push(Problem::at("batch_size", "must be at least 1"));
        }
        if self.transaction && self.save_to.is_some() {
            problems.push(Problem::at(
                "save_to",
                "not with `transaction: true`; save the rows of one statement",
            ));
        }
        problems
    }

    /// The statements with their values rendered.
    pub(crate) fn statements(&self, cx: &StepCx<'_>) -> Result<Vec<Statement>, StepError> {
        let render = |setting: &str, params: Option<&Tpl<Vec<Value>>>| match params {
            Some(tpl) => cx.render(setting, tpl),
            None => Ok(Vec::new()),
        };
        match &self.query {
            QuerySetting::One(sql) => Ok(vec![Statement {
                sql: sql.clone(),
                params: render("params", self.params.as_ref())?,
            }]),
            QuerySetting::Many(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Ok(Statement {
                        sql: s.query.clone(),
                        params: render(&format!("query[{i}].params"), s.params.as_ref())?,
                    })
                })
                .collect(),
        }
    }

    /// Rows per chunk.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1)
    }
}

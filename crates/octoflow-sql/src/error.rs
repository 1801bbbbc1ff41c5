//! How a statement fails, and what a retry may fix.

use octoflow_core::error::chain;
use octoflow_core::step::StepError;

/// Why a `sql` step failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    /// The connection could not be opened or was lost.
    #[error("connection `{connection}`: {message}")]
    Connect {
        /// The connection's name.
        connection: String,
        /// What went wrong (no URL, no password).
        message: String,
    },
    /// The database refused or failed a statement.
    #[error("statement {index}: {message}")]
    Statement {
        /// 1-based, in the order written.
        index: usize,
        /// The database's message.
        message: String,
    },
    /// A parameter could not be bound.
    #[error("statement {index}: `params[{param}]`: {message}")]
    Param {
        /// 1-based statement number.
        index: usize,
        /// 0-based parameter number.
        param: usize,
        /// Why.
        message: String,
    },
    /// A column's value could not be turned into JSON.
    #[error("statement {index}: column `{column}`: {message}")]
    Column {
        /// 1-based statement number.
        index: usize,
        /// The column's name.
        column: String,
        /// Why.
        message: String,
    },
    /// Writing the rows to `save_to` failed.
    #[error("cannot write rows to `{path}`: {message}")]
    Save {
        /// The file as written in the step.
        path: String,
        /// Why.
        message: String,
    },
}

impl SqlError {
    /// A statement's failure from the driver's error.
    pub(crate) fn statement(index: usize, error: &sqlx::Error) -> Self {
        Self::Statement {
            index,
            message: driver_message(error),
        }
    }

    /// Whether another attempt may succeed: a lost or refused connection, a deadlock, a
    /// serialization failure — not a syntax error or a bad parameter.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Statement { message, .. } => {
                message.contains("deadlock") || message.contains("could not serialize")
            }
            Self::Param { .. } | Self::Column { .. } | Self::Save { .. } => false,
        }
    }
}

impl From<SqlError> for StepError {
    fn from(error: SqlError) -> Self {
        let retryable = error.is_retryable();
        let message = error.to_string();
        if retryable {
            StepError::failed(message)
        } else {
            StepError::fatal(message)
        }
    }
}

/// The driver's error as one line: the database's own message for a refused statement
/// (with its SQLSTATE code), else the error chain.
pub(crate) fn driver_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => chain(other),
    }
}

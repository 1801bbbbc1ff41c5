//! How driver failures become [`StoreError`]s, and the errors of opening a store.
//!
//! A broken uniqueness rule is a `Conflict`; a busy, locked, unreadable or unopenable file
//! and a starved pool are `Unavailable`; anything else is `Backend`. Messages never carry
//! SQL text: the driver error is kept as the source, and `SQLite`'s own messages name no
//! statement.

use std::path::PathBuf;

use octoflow_core::store::StoreError;
use sqlx::migrate::MigrateError;

/// `SQLite` primary result codes that mean "try again later" rather than "this is broken".
const UNAVAILABLE_CODES: &[i32] = &[
    5,  // SQLITE_BUSY: another connection holds the write lock
    6,  // SQLITE_LOCKED: a table is locked
    10, // SQLITE_IOERR: the disk failed
    13, // SQLITE_FULL: the disk is full
    14, // SQLITE_CANTOPEN: the file cannot be opened
];

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The database file's directory could not be created.
    #[error("cannot create directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened.
    #[error("cannot open database `{}`", path.display())]
    Connect {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate database `{}`", path.display())]
    Migrate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MigrateError,
    },
    /// A store URL that is not a `SQLite` one.
    #[error("unsupported store url scheme `{scheme}`; expected `sqlite://path` or `sqlite:path`")]
    Url {
        /// What came before the first `:` (the rest may hold a password, so it is not shown).
        scheme: String,
    },
    /// A `SQLite` URL without a path.
    #[error("store url has no path; expected `sqlite://path` or `sqlite:path`")]
    EmptyPath,
}

impl OpenError {
    /// The store error this becomes: `Unavailable` when the file cannot be reached.
    pub(crate) fn into_store(self) -> StoreError {
        let unavailable = match &self {
            Self::CreateDir { .. } => true,
            Self::Connect { source, .. } => is_unavailable(source),
            Self::Migrate { source, .. } => match source {
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
                    is_unavailable(e)
                }
                _ => false,
            },
            Self::Url { .. } | Self::EmptyPath => false,
        };
        if unavailable {
            StoreError::Unavailable(Box::new(self))
        } else {
            StoreError::Backend(Box::new(self))
        }
    }
}

/// Maps a driver error from a statement that breaks no uniqueness rule in normal use.
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Backend(Box::new(err))
    }
}

/// Maps a driver error from a statement that may break the uniqueness rule `what`.
pub(crate) fn conflict_or(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: what.to_owned(),
        },
        _ => from_sqlx(err),
    }
}

/// Whether the error means the database cannot be reached right now.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            primary.is_some_and(|c| UNAVAILABLE_CODES.contains(&c))
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(matches!(
            from_sqlx(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn row_not_found_is_backend() {
        assert!(matches!(
            from_sqlx(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn url_error_hides_everything_after_the_scheme() {
        let err = OpenError::Url {
            scheme: "postgres".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            "unsupported store url scheme `postgres`; expected `sqlite://path` or `sqlite:path`"
        );
    }
}

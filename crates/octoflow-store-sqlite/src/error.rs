//! How driver failures become [`StoreError`]s, and the errors of opening a store.
//!
//! A broken uniqueness rule is a `Conflict`; a busy, locked, unreadable or unopenable file
//! is `Unavailable`; anything else is `Backend`. The driver error is kept as the source.
//! It never holds a stored value (every value is bound, not written into SQL text), and
//! the API answers any of these as an internal error without the source.

use std::path::PathBuf;

use octoflow_core::store::StoreError;
use rusqlite::ErrorCode;
use rusqlite::ffi;

/// `SQLite` result codes that mean "try again later" rather than "this is broken".
const UNAVAILABLE_CODES: &[ErrorCode] = &[
    ErrorCode::DatabaseBusy,   // another connection holds the write lock
    ErrorCode::DatabaseLocked, // a table is locked
    ErrorCode::SystemIoFailure,
    ErrorCode::DiskFull,
    ErrorCode::CannotOpen,
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
    /// The database file could not be opened or its schema brought up to date.
    #[error("cannot open database `{}`", path.display())]
    Connect {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file's schema is newer than this build's: a newer octoflow migrated it.
    #[error("database `{}` was made by a newer octoflow (schema {found}; this build knows up to {known})", path.display())]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The writer could not be started: its thread, or the checkpointer's thread or
    /// connection.
    #[error("cannot start the store's writer or its checkpointer")]
    Thread {
        /// Why.
        #[source]
        source: std::io::Error,
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
            Self::CreateDir { .. } | Self::Thread { .. } => true,
            Self::Connect { source, .. } => is_unavailable(source),
            Self::Url { .. } | Self::EmptyPath | Self::Newer { .. } => false,
        };
        if unavailable {
            StoreError::Unavailable(Box::new(self))
        } else {
            StoreError::Backend(Box::new(self))
        }
    }
}

/// Maps a driver error from a statement that breaks no uniqueness rule in normal use.
pub(crate) fn from_sqlite(err: rusqlite::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Backend(Box::new(err))
    }
}

/// Maps a driver error from a statement that may break the uniqueness rule `what`.
pub(crate) fn conflict_or(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |err| match err.sqlite_error() {
        Some(e)
            if e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict {
                what: what.to_owned(),
            }
        }
        _ => from_sqlite(err),
    }
}

/// Whether the error means the database cannot be reached right now.
pub(crate) fn is_unavailable(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code()
        .is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn busy_is_unavailable() {
        assert!(matches!(
            from_sqlite(failure(ffi::SQLITE_BUSY)),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn a_broken_unique_rule_is_a_conflict_naming_the_rule() {
        let err = conflict_or("run id")(failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY));
        assert!(matches!(err, StoreError::Conflict { what } if what == "run id"));
        assert!(matches!(
            conflict_or("run id")(failure(ffi::SQLITE_CONSTRAINT_NOTNULL)),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn no_rows_is_backend() {
        assert!(matches!(
            from_sqlite(rusqlite::Error::QueryReturnedNoRows),
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

//! How driver failures become [`StoreError`]s, and the errors of connecting a store.
//!
//! A broken uniqueness rule is a `Conflict`; a server that cannot be reached, is shutting
//! down, is out of connections, or chose this transaction as a deadlock's victim is
//! `Unavailable` (try again later); anything else is `Backend`. The driver error is kept as
//! the source. It never holds a stored value (every value is bound, not written into SQL
//! text) and never the connection URL: connect errors name the host, port and database only.

use octoflow_core::store::StoreError;

/// SQLSTATE codes (or classes, ending in `*`) that mean "try again later".
const UNAVAILABLE_CODES: &[&str] = &[
    "08*",   // connection exception
    "40001", // serialization failure
    "40P01", // deadlock detected
    "53300", // too many connections
    "55P03", // lock not available
    "57P01", // admin shutdown
    "57P02", // crash shutdown
    "57P03", // cannot connect now
];

/// The SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// Why a store could not be connected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URL does not parse as a PostgreSQL URL.
    #[error("invalid PostgreSQL URL")]
    Url {
        /// Why (the driver's reason, without the URL).
        #[source]
        source: sqlx::Error,
    },
    /// The `schema` option is not a plain identifier.
    #[error(
        "invalid schema name `{name}`: use at most 63 ASCII letters, digits and `_`, \
         not starting with a digit"
    )]
    Schema {
        /// The name given.
        name: String,
    },
    /// The server did not answer, or refused the connection.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// `host:port/database`, without user or password.
        target: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Without `schema`, the URL's `search_path` names no schema that exists.
    #[error(
        "no schema to keep the tables in: the connection's search_path names none that \
         exists; set the store's schema"
    )]
    NoSchema,
    /// The schema could not be brought up to date.
    #[error("cannot bring schema `{schema}` up to date")]
    Migrate {
        /// The schema.
        schema: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The schema was made by a newer build.
    #[error(
        "schema `{schema}` was made by a newer octoflow (schema {found}; this build knows up \
         to {known})"
    )]
    Newer {
        /// The schema.
        schema: String,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The connection that listens for wake-ups could not be opened.
    #[error("cannot listen for notifications")]
    Listen {
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

impl ConnectError {
    /// The store error this becomes: `Unavailable` when the server cannot be reached.
    pub(crate) fn into_store(self) -> StoreError {
        let unavailable = match &self {
            Self::Connect { source, .. }
            | Self::Migrate { source, .. }
            | Self::Listen { source } => is_unavailable(source),
            Self::Url { .. } | Self::Schema { .. } | Self::NoSchema | Self::Newer { .. } => false,
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
    move |err| {
        if code(&err).as_deref() == Some(UNIQUE_VIOLATION) {
            StoreError::Conflict {
                what: what.to_owned(),
            }
        } else {
            from_sqlx(err)
        }
    }
}

/// Whether the error means the server cannot serve this now.
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => code(err).is_some_and(|code| {
            UNAVAILABLE_CODES
                .iter()
                .any(|known| match known.strip_suffix('*') {
                    Some(class) => code.starts_with(class),
                    None => code == *known,
                })
        }),
        _ => false,
    }
}

/// The SQLSTATE of a database error.
fn code(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(std::borrow::Cow::into_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_pool_timeouts_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(from_sqlx(io), StoreError::Unavailable(_)));
        assert!(matches!(
            from_sqlx(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_sqlx(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn connect_errors_name_no_credentials() {
        let err = ConnectError::Connect {
            target: "db.internal:5432/octoflow".to_owned(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert_eq!(
            err.to_string(),
            "cannot connect to PostgreSQL at db.internal:5432/octoflow"
        );
        assert!(matches!(err.into_store(), StoreError::Unavailable(_)));
        let newer = ConnectError::Newer {
            schema: "octoflow".to_owned(),
            found: 12,
            known: 9,
        };
        assert_eq!(
            newer.to_string(),
            "schema `octoflow` was made by a newer octoflow (schema 12; this build knows up to 9)"
        );
        assert!(matches!(newer.into_store(), StoreError::Backend(_)));
    }
}

//! What PostgreSQL and MySQL/MariaDB do differently for a step — naming a session, stopping
//! its statement, running one statement — behind one trait, so that a step's session
//! ([`crate::session`]) is written once.

use std::future::Future;

use sqlx::Database;

use crate::error::SqlError;
use crate::output::RowSink;
use crate::settings::Statement;

/// What a statement did: rows went to the sink, or rows were changed.
pub(crate) enum Done {
    Rows,
    Affected(u64),
}

/// A connection of backend `B`.
pub(crate) type Conn<B> = <<B as Backend>::Db as Database>::Connection;

/// One database family.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The driver.
    type Db: Database;
    /// How the server names a session.
    type SessionId: Copy + Send + Sync + std::fmt::Display + 'static;

    /// The server's id of the session `conn` is.
    fn session_id(
        conn: &mut Conn<Self>,
    ) -> impl Future<Output = Result<Self::SessionId, sqlx::Error>> + Send;

    /// Asks the server, from another session, to stop the statement session `id` runs.
    fn stop(
        conn: &mut Conn<Self>,
        id: Self::SessionId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Runs statement number `index` (1-based): its rows into `sink`, `batch_size` at a time.
    fn run(
        conn: &mut Conn<Self>,
        index: usize,
        statement: &Statement,
        sink: &mut RowSink,
        batch_size: usize,
    ) -> impl Future<Output = Result<Done, SqlError>> + Send;
}

//! Opening the database file: connection settings and the schema's migrations.
//!
//! The write connection opens first: it creates the file, switches it to WAL (which
//! persists in the file) and brings the schema up to date. Read connections open the same
//! file afterwards, read-only by pragma.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::OpenError;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the `-wal` file kept once the log starts over (64 MiB).
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;
/// Prepared statements kept per connection: every statement the store runs, with room.
const STATEMENT_CACHE: usize = 64;

/// How durable a commit is (`SQLite`'s `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The log is synced at checkpoints, not at each commit: a crash or `kill -9` of the
    /// process loses nothing committed; a power loss or OS crash may lose the last commits.
    #[default]
    Normal,
    /// The log is synced at every commit: nothing committed is lost, even to a power loss.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// The schema, one entry per file in `migrations/`, in order; a database's
/// `PRAGMA user_version` is the number of the last one applied.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_runs.sql")),
    (2, include_str!("../migrations/0002_state.sql")),
    (3, include_str!("../migrations/0003_queue.sql")),
    (4, include_str!("../migrations/0004_admission.sql")),
    (5, include_str!("../migrations/0005_schedules.sql")),
    (6, include_str!("../migrations/0006_fewer_index_writes.sql")),
    (7, include_str!("../migrations/0007_fencing.sql")),
    (8, include_str!("../migrations/0008_schedule_changes.sql")),
    (9, include_str!("../migrations/0009_schedule_removals.sql")),
    (10, include_str!("../migrations/0010_children.sql")),
    (11, include_str!("../migrations/0011_checks_in_place.sql")),
    (12, include_str!("../migrations/0012_indexes_ascending.sql")),
    (13, include_str!("../migrations/0013_holders_only.sql")),
];

/// How many times a first open that found the file busy is tried again, and how long apart:
/// processes opening a new file at once can find it locked by another's switch to WAL
/// mode, which `SQLite` answers at once rather than through the busy timeout.
const OPEN_TRIES: u32 = 50;
const OPEN_RETRY_AFTER: Duration = Duration::from_millis(20);

/// Opens the write connection, creating the file, and migrates the schema. A file whose
/// schema is newer than this build's is refused.
pub(crate) fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, OpenError> {
    let mut tries = 1;
    loop {
        match try_open_writer(path, synchronous) {
            Err(OpenError::Connect { source, .. })
                if tries < OPEN_TRIES
                    && source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                tries += 1;
                #[allow(clippy::disallowed_methods)] // reason: opens run on a blocking thread
                std::thread::sleep(OPEN_RETRY_AFTER);
            }
            opened => return opened,
        }
    }
}

fn try_open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, OpenError> {
    let connect = |source| OpenError::Connect {
        path: path.to_owned(),
        source,
    };
    let mut conn = open(path, OpenFlags::SQLITE_OPEN_CREATE).map_err(connect)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(connect)?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())
        .map_err(connect)?;
    // A log that grew under load is cut back to this size when it starts over.
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(connect)?;
    // Each write op runs in a savepoint, whose copies of the pages it changes go to a
    // statement journal: kept in memory, not spilled to a temporary file past 64 KiB.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(connect)?;
    let found = migrate(&mut conn).map_err(connect)?;
    if found > LATEST {
        return Err(OpenError::Newer {
            path: path.to_owned(),
            found,
            known: LATEST,
        });
    }
    Ok(conn)
}

/// Opens a read connection on a file the writer has opened.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open(path, OpenFlags::empty())?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Opens the checkpointer's connection on a file the writer has opened.
pub(crate) fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    open(path, OpenFlags::empty())
}

fn open(path: &Path, extra: OpenFlags) -> rusqlite::Result<Connection> {
    // Each connection is used by one thread at a time: SQLite's own mutexes are not needed.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The schema version this build makes.
const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Applies the migrations the file lacks, in one `IMMEDIATE` transaction: two processes
/// opening a new file at once take turns, and the second finds the schema up to date.
/// Returns the version the file had.
fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version == 0 {
        version = earlier_version(&tx)?;
    }
    if version >= LATEST {
        tx.commit()?;
        return Ok(version);
    }
    for &(_, sql) in MIGRATIONS.iter().filter(|&&(n, _)| n > version) {
        tx.execute_batch(sql)?;
        if sql.contains("writable_schema") {
            // A definition edited in place: other connections learn of it by the schema's
            // version, which such an edit does not step by itself.
            let schema: i64 = tx.pragma_query_value(None, "schema_version", |row| row.get(0))?;
            tx.pragma_update(None, "schema_version", schema + 1)?;
        }
    }
    tx.pragma_update(None, "user_version", LATEST)?;
    tx.commit()?;
    // Read the schema as it now is, so that statements prepared from here on are not
    // prepared again on their first run.
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })?;
    Ok(version)
}

/// The schema version of a file made by a build that kept it in a `_sqlx_migrations` table,
/// or 0.
fn earlier_version(conn: &Connection) -> rusqlite::Result<i64> {
    let table: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if table.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |row| row.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_new_file_gets_every_migration_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let conn = open_writer(&path, Synchronous::Normal).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, LATEST);
        assert!(tables(&conn).contains(&"schedules".to_owned()));
        drop(conn);
        // Opening again applies nothing (a second `CREATE TABLE` would fail).
        open_writer(&path, Synchronous::Normal).unwrap();
    }

    #[test]
    fn a_file_of_an_earlier_build_continues_from_its_last_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let conn = Connection::open(&path).unwrap();
        for &(_, sql) in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN);
             INSERT INTO _sqlx_migrations VALUES (1, TRUE), (2, TRUE), (3, TRUE);",
        )
        .unwrap();
        drop(conn);
        let conn = open_writer(&path, Synchronous::Normal).unwrap();
        assert!(tables(&conn).contains(&"schedules".to_owned()));
    }

    /// The status rules of a file made before migration 11, with rows in it, are rewritten
    /// as comparisons: the rows stay, the file checks whole, and the rules still refuse.
    #[test]
    fn status_rules_are_checked_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let conn = Connection::open(&path).unwrap();
        for &(_, sql) in &MIGRATIONS[..10] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 10).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, flow, flow_version, status, params, trigger, created_at, data)
               VALUES ('r1', 'f', 'v', 'succeeded', '{}', '{}', 't', '{}');
             INSERT INTO step_runs (run_id, step, attempt, status, started_at)
               VALUES ('r1', 's', 0, 'succeeded', 't');",
        )
        .unwrap();
        let reader = Connection::open(&path).unwrap();
        let rules = |c: &Connection| -> String {
            c.query_row(
                "SELECT group_concat(sql) FROM sqlite_master \
                 WHERE name IN ('runs', 'step_runs', 'step_logs')",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert!(
            rules(&reader).contains("status IN"),
            "opened before the migration"
        );
        drop(conn);

        let conn = open_writer(&path, Synchronous::Normal).unwrap();
        let now = rules(&conn);
        assert!(
            !now.contains("status IN") && !now.contains("stream IN"),
            "{now}"
        );
        assert!(now.contains("status = 'timed_out'") && now.contains("stream = 'engine'"));
        assert_eq!(rules(&reader), now, "another connection sees the new rules");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM step_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        for bad in [
            "UPDATE runs SET status = 'lost'",
            "UPDATE step_runs SET status = 'lost'",
            "INSERT INTO step_logs (run_id, step, attempt, ts, stream, line) \
               VALUES ('r1', 's', 0, 't', 'stdin', 'x')",
        ] {
            let err = conn.execute(bad, []).unwrap_err().to_string();
            assert!(err.contains("CHECK constraint failed"), "{bad}: {err}");
        }
        conn.execute("UPDATE runs SET status = 'failed'", [])
            .unwrap();
    }

    #[test]
    fn the_writer_syncs_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, level) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let conn = open_writer(&dir.path().join("o.db"), mode).unwrap();
            let found: i64 = conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(found, level, "{mode:?}");
        }
    }

    #[test]
    fn a_file_of_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        drop(open_writer(&path, Synchronous::Normal).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = open_writer(&path, Synchronous::Normal)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("was made by a newer octoflow (schema 99; this build knows up to 13)"),
            "{err}"
        );
    }

    #[test]
    fn numbers_follow_the_list() {
        for (i, &(n, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(n).unwrap(), i + 1);
        }
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let _writer = open_writer(&path, Synchronous::Normal).unwrap();
        let reader = open_reader(&path).unwrap();
        let err = reader
            .execute("DELETE FROM runs", [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("readonly"), "{err}");
    }
}

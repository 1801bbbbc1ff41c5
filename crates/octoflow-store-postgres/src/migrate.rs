//! The schema's migrations: the files of `migrations/`, numbered as the `SQLite` store's
//! (the same number is the same logical change), applied in order.
//!
//! Every node brings the schema up to date as it connects. The pending migrations and the new
//! version are one transaction, taken under a transaction-level advisory lock: nodes starting
//! at once take turns, and the later ones find the schema up to date. The version is kept in
//! the table `schema_version` of the schema; a schema of a newer build is refused.

use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::error::ConnectError;
use crate::names::{Names, quoted};

/// One file of `migrations/`.
struct Migration {
    version: i64,
    file: &'static str,
    sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration {
            version: $version,
            file: $file,
            sql: include_str!(concat!("../migrations/", $file)),
        }
    };
}

/// The schema, one entry per file in `migrations/`, in order.
const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_runs.sql"),
    migration!(2, "0002_state.sql"),
    migration!(3, "0003_queue.sql"),
    migration!(4, "0004_admission.sql"),
    migration!(5, "0005_schedules.sql"),
    migration!(6, "0006_fewer_index_writes.sql"),
    migration!(7, "0007_fencing.sql"),
    migration!(8, "0008_schedule_changes.sql"),
    migration!(9, "0009_schedule_removals.sql"),
    migration!(10, "0010_children.sql"),
    migration!(11, "0011_checks_in_place.sql"),
    migration!(12, "0012_indexes_ascending.sql"),
    migration!(13, "0013_holders_only.sql"),
];

/// The schema version this build makes.
const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Brings `schema` up to date on `conn`, whose `search_path` starts with it; `create` says
/// whether to create the schema when missing (a schema named in the options). A schema made
/// by a newer build is refused.
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    schema: &str,
    create: bool,
) -> Result<(), ConnectError> {
    let failed = |source| ConnectError::Migrate {
        schema: schema.to_owned(),
        source,
    };
    let mut tx = sqlx::Connection::begin(conn).await.map_err(failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(Names::migration_lock(schema))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    if create {
        let name = quoted(schema);
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {name}; SET LOCAL search_path TO {name}");
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id      integer PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let found: i64 = sqlx::query("SELECT version FROM schema_version WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?
        .map(|row| row.try_get("version"))
        .transpose()
        .map_err(failed)?
        .unwrap_or(0);
    if found > LATEST {
        return Err(ConnectError::Newer {
            schema: schema.to_owned(),
            found,
            known: LATEST,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tracing::info!(schema, migration = migration.file, "Migration applied.");
    }
    sqlx::query(
        "INSERT INTO schema_version (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
    )
    .bind(LATEST)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The file names of a migrations directory, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migrations_are_numbered_as_the_sqlite_stores() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ours = files(&root.join("migrations"));
        let sqlite = files(&root.join("../octoflow-store-sqlite/migrations"));
        assert_eq!(ours, sqlite, "the same numbers for the same changes");
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
        assert_eq!(listed, ours, "every file is applied, in order");
    }

    #[test]
    fn versions_follow_the_list_and_the_file_names() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(migration.version).unwrap(), i + 1);
            assert!(
                migration
                    .file
                    .starts_with(&format!("{:04}_", migration.version)),
                "{}",
                migration.file
            );
        }
    }
}

//! Opening the store the settings name (SPEC §9): used by `run`, `serve`, `worker` and the
//! admin commands (`user`, `token`).

use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::secrets::Redactor;
use octoflow_core::store::Store;
use octoflow_store_postgres::{PostgresOptions, PostgresStore};
use octoflow_store_sqlite::{SqliteStore, Synchronous};

use crate::config::{Config, Database, StoreSection, SynchronousMode};

/// Opens the store of the config's database URL.
pub(crate) async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    open_database(config.database()?, &config.store).await
}

/// Opens the store a database URL names (a `SQLite` file and its folder are created when
/// missing; a PostgreSQL database's tables are made or brought up to date), kept as
/// `settings` say.
pub(crate) async fn open_database(
    database: Database,
    settings: &StoreSection,
) -> Result<Arc<dyn Store>> {
    match database {
        Database::Sqlite(path) => {
            let synchronous = match settings.synchronous {
                SynchronousMode::Normal => Synchronous::Normal,
                SynchronousMode::Full => Synchronous::Full,
            };
            let store = SqliteStore::open_with(&path, synchronous)
                .await
                .with_context(|| format!("cannot open the store `{}`", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let mut options = PostgresOptions::default();
            if let Some(max) = settings.max_connections {
                options.max_connections = max;
            }
            options.schema.clone_from(&settings.schema);
            let store = PostgresStore::connect(url.expose(), &options)
                .await
                .with_context(|| {
                    let shown = Redactor::default().text(url.expose()).into_owned();
                    format!("cannot open the store `{shown}`")
                })?;
            Ok(Arc::new(store))
        }
    }
}

//! Opening the store the settings name (SPEC §9): used by `run`, `serve` and the admin
//! commands (`user`, `token`).

use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::store::Store;
use octoflow_store_sqlite::SqliteStore;

use crate::config::{Config, Database};

/// Opens the store of the config's database URL.
pub(crate) async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    open_database(config.database()?).await
}

/// Opens the store a database URL names (a `SQLite` file and its folder are created when
/// missing).
pub(crate) async fn open_database(database: Database) -> Result<Arc<dyn Store>> {
    match database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open the store `{}`", path.display()))?;
            Ok(Arc::new(store))
        }
    }
}

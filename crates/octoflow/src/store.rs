//! Opening the store the settings name (SPEC §9): used by `run`, `serve` and the admin
//! commands (`user`, `token`).

use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::store::Store;
use octoflow_store_sqlite::{SqliteStore, Synchronous};

use crate::config::{Config, Database, StoreSection, SynchronousMode};

/// Opens the store of the config's database URL.
pub(crate) async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    open_database(config.database()?, config.store).await
}

/// Opens the store a database URL names (a `SQLite` file and its folder are created when
/// missing), kept as `settings` say.
pub(crate) async fn open_database(
    database: Database,
    settings: StoreSection,
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
    }
}

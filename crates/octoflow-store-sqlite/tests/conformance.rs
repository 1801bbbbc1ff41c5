//! The store conformance suite against a `SQLite` file in a fresh temporary directory per case.

use octoflow_store_sqlite::SqliteStore;

octoflow_testkit::store_conformance!(async {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = SqliteStore::open(&dir.path().join("octoflow.db"))
        .await
        .expect("open store");
    (store, dir)
});

//! The store conformance suite against a `SQLite` file in a fresh temporary directory per case.

use octoflow_store_sqlite::SqliteStore;

octoflow_testkit::store_conformance!(async {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("octoflow.db");
    let store = SqliteStore::open(&path).await.expect("open store");
    // Another process's handle: its own writer, readers and wake-ups.
    let other = SqliteStore::open(&path)
        .await
        .expect("open the store again");
    Some((store, other, dir))
});

/// Several processes (here: tasks with their own connections) opening a new file at once all
/// succeed: the first migration is not raced into an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    // Each store has its own connections (each on its own thread), so the opens really race.
    let opens = (0..4).map(|_| SqliteStore::open(&path));
    for open in futures::future::join_all(opens).await {
        open.unwrap();
    }
}

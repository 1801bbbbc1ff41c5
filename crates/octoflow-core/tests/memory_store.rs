//! The store conformance suite against the in-memory store.

use octoflow_core::store::MemoryStore;

octoflow_testkit::store_conformance!(async {
    let store = MemoryStore::new();
    Some((store.clone(), store, ()))
});

//! The store conformance suite against the in-memory store.

use octoflow_core::store::MemoryStore;

octoflow_testkit::store_conformance!(async { (MemoryStore::new(), ()) });

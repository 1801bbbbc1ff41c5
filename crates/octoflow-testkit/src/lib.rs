//! Test helpers for octoflow, used only as a dev-dependency:
//!
//! - [`harness`]: run inline YAML flows through the real engine and assert on the run;
//! - [`store`]: the store conformance suite every backend runs through
//!   [`store_conformance!`];
//! - [`scheduler`]: a scheduler over a store and flow files, with a clock, restartable;
//! - [`services`]: service URLs for tests, skipped with a reason or required under CI;
//! - the CLI builder lives in its own module.

pub mod cli;
pub mod harness;
pub mod scheduler;
pub mod services;
pub mod store;
pub mod tools;

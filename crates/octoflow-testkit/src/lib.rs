//! Test helpers for octoflow, used only as a dev-dependency:
//!
//! - [`harness`]: run inline YAML flows through the real engine and assert on the run;
//! - the CLI builder and the store conformance suite live in their own modules.

pub mod harness;

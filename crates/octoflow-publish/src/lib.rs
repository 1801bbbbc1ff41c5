//! The `publish` step kind.

//! The `sql` step kind.

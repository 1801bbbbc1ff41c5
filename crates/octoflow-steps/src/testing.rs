//! Shared helpers of the kinds' tests.

use octoflow_core::step::Registry;
use octoflow_testkit::harness::Harness;

/// A harness with every built-in leaf kind.
pub(crate) fn harness() -> Harness {
    let mut registry = Registry::new();
    crate::register_builtin(&mut registry);
    Harness::new(registry)
}

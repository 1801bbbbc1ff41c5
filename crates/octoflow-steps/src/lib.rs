//! The built-in leaf step kinds of octoflow.
//!
//! Each kind is one directory: its settings, one attempt, and its tests. The table below
//! is the only place that lists them; the engine-level kinds (`flow`, `flow_loop`, …) live
//! in `octoflow-core`.

use octoflow_core::step::Registry;

mod debug;
mod exec;
mod exit;
mod file;
mod jinja;
mod jq;
mod set_fact;
mod sleep;

/// Adds every built-in leaf kind to `registry`.
pub fn register_builtin(registry: &mut Registry) {
    registry.register(exec::Exec);
    registry.register(file::File);
    registry.register(jq::Jq);
    registry.register(jinja::Jinja);
    registry.register(set_fact::SetFact);
    registry.register(debug::Debug);
    registry.register(sleep::Sleep);
    registry.register(exit::Exit);
}

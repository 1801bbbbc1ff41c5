//! The built-in leaf step kinds of octoflow.
//!
//! Each kind is one directory: its settings, one attempt, and its tests. The table below
//! is the only place that lists them; the engine-level kinds (`flow`, `flow_loop`, …) live
//! in `octoflow-core`. Shared resources (the `rest` kind's HTTP client) are built once from a
//! [`StepsConfig`] and handed to the kinds at registration.

use octoflow_core::step::Registry;

mod config;
mod debug;
mod email;
mod exec;
mod exit;
mod file;
mod hash;
mod jinja;
mod jira_names_merge;
mod jq;
mod rest;
mod set_fact;
mod sleep;
#[cfg(test)]
mod testing;

pub use config::{HttpConfig, SmtpServer, StepsConfig};

/// Adds every built-in leaf kind to `registry`, with the default [`StepsConfig`].
pub fn register_builtin(registry: &mut Registry) {
    register_builtin_with(registry, &StepsConfig::default());
}

/// Adds every built-in leaf kind to `registry`, sharing the resources built from `config`
/// (one HTTP client for every `rest` step).
///
/// Never fails: should the HTTP client not build (its TLS backend cannot start), the error
/// is logged here and every `rest` step fails with it, while the other kinds work.
pub fn register_builtin_with(registry: &mut Registry, config: &StepsConfig) {
    registry.register(exec::Exec);
    registry.register(file::File);
    registry.register(rest::Rest::new(&config.http));
    registry.register(jq::Jq);
    registry.register(jinja::Jinja);
    registry.register(jira_names_merge::JiraNamesMerge);
    registry.register(hash::Hash);
    registry.register(set_fact::SetFact);
    registry.register(debug::Debug);
    registry.register(sleep::Sleep);
    registry.register(exit::Exit);
    registry.register(email::Email::new(config.smtp.clone()));
}

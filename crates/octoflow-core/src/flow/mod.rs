//! From YAML text to a validated [`Flow`].
//!
//! [`FlowLoader`] parses the text and maps every field to its line and column
//! ([`SourceMap`]), then checks the parsed document into the model the engine uses
//! ([`Flow`]), collecting every [`Problem`] instead of stopping at the first.

mod check;
mod duration;
mod load;
mod model;
mod params;
mod problem;
mod schema;
mod source_map;
mod spec;
mod trigger;
mod watch_trigger;

pub use duration::{Dur, DurationError, format_duration, parse_duration};
pub use load::{FlowLoader, flow_version};
pub use model::{Backoff, Concurrency, ConcurrencyPolicy, Flow, OnInterrupt, RetryPolicy, Step};
pub use params::{ParamError, ParamSpec, ParamType, Params};
pub use problem::{Problem, Problems, suggest};
pub use schema::{flow_fields, flow_schema, step_fields};
pub use source_map::{Place, SourceMap};
pub use trigger::{
    Catchup, FlowTrigger, RESERVED_PREFIXES, Schedule, Trigger, WatchTrigger, Webhook, WebhookAuth,
    WebhookResponse,
};
pub use watch_trigger::{DEFAULT_SETTLE, FilePattern, WatchExisting};

/// Flow names: `^[a-z0-9][a-z0-9_.-]{0,63}$`.
pub fn is_valid_flow_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

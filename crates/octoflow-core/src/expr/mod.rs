//! Expressions, templates and jq programs: how flow files compute values.
//!
//! - [`Tpl`] is a templated setting: every string inside it is a Jinja template, rendered at
//!   run time against a [`Scope`]; a string that is one whole `{{ … }}` keeps its JSON type.
//! - [`Expr`] is a Jinja expression without braces (`when`, `until`).
//! - [`JqProgram`] is a compiled jq program (`jq_expression`, the `jq` kind).

mod compiled;
mod env;
mod filters;
mod jq;
mod scope;
mod tpl;

pub use compiled::render_value;
pub use env::{Expr, ExprError, render_str, strip_braces};
pub use jq::{JqError, JqProgram, JqVars};
pub use scope::{RESERVED_NAMES, Scope, ScopeBuilder};
pub use tpl::{Tpl, TplError};

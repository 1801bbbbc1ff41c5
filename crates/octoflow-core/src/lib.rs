//! The octoflow engine as a library.
//!
//! octoflow runs **flows**: YAML files of steps that move and transform data between files,
//! commands, HTTP APIs, databases and message streams, recording every run and step.
//! This crate holds everything that needs no driver and no server:
//!
//! - [`flow`]: from YAML text to a validated [`flow::Flow`], with every problem located;
//! - [`expr`]: templates ([`expr::Tpl`]), expressions and jq programs;
//! - [`step`]: the [`step::StepKind`] extension point and its [`step::Registry`];
//! - [`engine`]: the [`engine::Engine`] that runs one run and records it;
//! - [`store`]: the store traits that backends implement;
//! - [`fs`]: confined paths ([`fs::SafePath`]).

pub mod engine;
pub mod error;
pub mod expr;
pub mod flow;
pub mod fs;
pub mod secrets;
pub mod step;
pub mod store;
pub mod yaml;

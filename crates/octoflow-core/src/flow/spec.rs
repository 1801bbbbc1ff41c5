//! Serde shapes of the flow-level blocks, mirroring the YAML; nothing checked beyond shape.

use serde::Deserialize;

use super::Dur;
use super::model::{Backoff, ConcurrencyPolicy};

/// `retry:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrySpec {
    pub attempts: u32,
    #[serde(default)]
    pub delay: Option<Dur>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
    #[serde(default)]
    pub max_delay: Option<Dur>,
}

/// `concurrency:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConcurrencySpec {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub policy: Option<ConcurrencyPolicy>,
    #[serde(default)]
    pub limit: Option<u32>,
}

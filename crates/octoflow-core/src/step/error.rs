//! How one step attempt can fail. Step failure is data: the engine records it.

use std::time::Duration;

use crate::error::BoxError;
use crate::flow::format_duration;

/// Why one attempt of a step did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The work failed: a non-zero exit, an unexpected status, a jq error.
    #[error("{message}")]
    Failed {
        /// What happened, as the user should read it.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// The attempt's timeout ran out.
    #[error("timed out after {}", format_duration(*.0))]
    TimedOut(Duration),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A templated setting could not be rendered.
    #[error("cannot render `{setting}`")]
    Render {
        /// The setting, such as `exec.command`.
        setting: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Something outside the step broke (disk, store).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl StepError {
    /// A failure that a retry may fix.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that a retry will not fix (bad input, bad settings).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether the engine may try again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Failed { retryable, .. } => *retryable,
            Self::TimedOut(_) | Self::Internal(_) => true,
            Self::Cancelled | Self::Render { .. } => false,
        }
    }
}

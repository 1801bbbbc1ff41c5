//! How talking to a sink can fail, as opposed to a sink refusing some records (which the
//! step sends again): each variant says whether another attempt of the step may help.

use octoflow_core::step::StepError;

/// A sink could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    /// A setting written with `{{ secrets.… }}` did not render.
    #[error("cannot render `{setting}` of sink `{sink}`: {message}")]
    Render {
        /// The sink's name.
        sink: String,
        /// The setting (`url`, `headers.X-Key`).
        setting: String,
        /// Why (names the secret, never a value).
        message: String,
    },
    /// A setting cannot be used as it is (a bad URL, a bad header name).
    #[error("invalid `{setting}` of sink `{sink}`: {message}")]
    Invalid {
        /// The sink's name.
        sink: String,
        /// The setting.
        setting: String,
        /// Why.
        message: String,
    },
    /// The connection (or its set-up: the stream, the channel) failed.
    #[error("cannot connect to sink `{sink}` at `{shown}`: {reason}")]
    Connect {
        /// The sink's name.
        sink: String,
        /// The URL without credentials.
        shown: String,
        /// Why, scrubbed of the password.
        reason: String,
    },
    /// Sending failed as a whole (the connection dropped, a request failed).
    #[error("cannot publish to sink `{sink}`: {reason}")]
    Send {
        /// The sink's name.
        sink: String,
        /// Why, scrubbed of the password.
        reason: String,
    },
    /// The sink refused the batch in a way that sending it again cannot change (an HTTP
    /// 4xx, a Redis type error).
    #[error("sink `{sink}` refused the batch: {reason}")]
    Refused {
        /// The sink's name.
        sink: String,
        /// Why.
        reason: String,
    },
}

impl SinkError {
    /// The step's failure: connection and transport problems may pass on another attempt,
    /// bad settings and refusals will not.
    pub(crate) fn into_step(self) -> StepError {
        let retryable = matches!(self, Self::Connect { .. } | Self::Send { .. });
        StepError::Failed {
            message: self.to_string(),
            retryable,
        }
    }
}

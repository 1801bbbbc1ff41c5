//! The HTTP client of `http` sinks and schema URLs, built when a step first needs it:
//! building one reads the system's certificate store (a file per authority), which a node
//! that publishes nothing over HTTP never needs.

use std::sync::{Arc, LazyLock};

use octoflow_core::error::chain;

type Build = Box<dyn FnOnce() -> Result<reqwest::Client, String> + Send>;

/// The shared client, or why it could not be built (only when TLS cannot start). Clones
/// share it.
#[derive(Clone)]
pub(crate) struct HttpClient(Arc<LazyLock<Result<reqwest::Client, String>, Build>>);

impl HttpClient {
    /// A client that `build` makes at its first use.
    pub(crate) fn new(
        build: impl FnOnce() -> reqwest::Result<reqwest::Client> + Send + 'static,
    ) -> Self {
        let build: Build = Box::new(move || {
            build().map_err(|err| {
                let message = format!("cannot build the HTTP client: {}", chain(&err));
                tracing::error!(error = %message, "`publish` cannot send over HTTP.");
                message
            })
        });
        Self(Arc::new(LazyLock::new(build)))
    }

    /// The client, built now if it was not yet.
    pub(crate) fn get(&self) -> Result<&reqwest::Client, &str> {
        LazyLock::force(&self.0).as_ref().map_err(String::as_str)
    }
}

//! What the built-in kinds take from the node's configuration: today the HTTP client of the
//! `rest` kind. The binary fills it from `config.yml`; [`Default`] is what a library user gets.

use std::time::Duration;

/// Settings shared by every built-in kind of a node.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StepsConfig {
    /// The one HTTP client that every `rest` step uses.
    pub http: HttpConfig,
    /// The mail servers of `email` steps, by name (`smtp:` of config.yml).
    pub smtp: std::collections::BTreeMap<String, SmtpServer>,
}

/// One mail server of `smtp:`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpServer {
    /// `smtp://host:port` (plain, or `?tls=required` for STARTTLS) or `smtps://host:port`;
    /// `user:password@` for a login. May hold `{{ secrets.… }}`, rendered when a step sends.
    pub url: String,
    /// The sender address; default `octoflow@<host name>`.
    pub from: Option<String>,
}

impl SmtpServer {
    /// A server at `url`, sending from `from`.
    pub fn new(url: impl Into<String>, from: Option<String>) -> Self {
        Self {
            url: url.into(),
            from,
        }
    }
}

/// How the shared HTTP client behaves. A step's own `timeout` limits one request on top.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// How long connecting (TCP and TLS) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the peer may stay silent while a request is sent or an answer is read;
    /// `None` for no limit. Default 5 min. This is not a limit on the whole request, so a
    /// large download that keeps flowing is never cut.
    pub read_timeout: Option<Duration>,
    /// How long an idle connection is kept for reuse. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host. Default 32.
    pub pool_max_idle_per_host: usize,
    /// The `User-Agent` header. Default `octoflow/<version>`.
    pub user_agent: String,
    /// The largest response body kept in memory as a step's result; a larger one fails the
    /// step with a hint to use `save_to`, which streams it to a file. Default 256 MiB.
    pub max_body_bytes: u64,
    /// The largest response body `save_to` writes: a peer cannot fill the disk. Default
    /// 16 GiB.
    pub max_save_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Some(Duration::from_secs(300)),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            user_agent: concat!("octoflow/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_body_bytes: 256 * 1024 * 1024,
            max_save_bytes: 16 * 1024 * 1024 * 1024,
        }
    }
}

impl HttpConfig {
    /// Builds the shared client.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised (the only way reqwest's builder fails).
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        self.builder().build()
    }

    /// A builder with these settings, for a client that needs more of its own.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .user_agent(self.user_agent.clone());
        if let Some(read) = self.read_timeout {
            builder = builder.read_timeout(read);
        }
        builder
    }
}

//! The sinks a node publishes to: one per entry of `sinks:`, each opening its client at
//! its first use and sharing it with every step. A sink sends one batch and says which
//! records it refused; the caller sends those again.

mod amqp;
mod error;
mod http;
mod kinesis;
mod nats;
mod redis;
mod s3;
mod shared;

use octoflow_core::error::chain;
use octoflow_core::secrets::Secrets;
use octoflow_core::step::StepError;

pub(crate) use self::error::SinkError;
use crate::batch::Item;
use crate::config::SinkConfig;
use crate::encode::Encoder;
use crate::http_client::HttpClient;

/// One batch on its way to a sink.
#[derive(Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The records to send (a whole batch, or the ones refused last time).
    pub(crate) items: &'a [&'a Item],
    /// The batch's number in this step visit, from 1.
    pub(crate) number: usize,
    /// The run's id.
    pub(crate) run_id: &'a str,
    /// The step's name.
    pub(crate) step: &'a str,
    /// The step's visit, from 1.
    pub(crate) visit: u32,
    /// How the records were encoded.
    pub(crate) encoder: &'a Encoder,
    /// For settings written with `{{ secrets.… }}`.
    pub(crate) secrets: &'a Secrets,
}

/// What a sink did with a batch.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The records it refused: their place in [`Outgoing::items`] and why.
    pub(crate) refused: Vec<(usize, String)>,
    /// Records it already had (NATS: the same message id in the duplicate window).
    pub(crate) duplicates: usize,
}

impl Outcome {
    /// Every record of a batch of `count` refused for `reason`.
    fn all_refused(count: usize, reason: &str) -> Self {
        Self {
            refused: (0..count).map(|i| (i, reason.to_owned())).collect(),
            duplicates: 0,
        }
    }
}

/// A configured sink with its client.
pub(crate) struct Sink {
    /// The name under `sinks:`.
    pub(crate) name: String,
    /// Its configuration.
    pub(crate) config: SinkConfig,
    client: Client,
}

/// The client of each kind.
enum Client {
    Nats(nats::Nats),
    Redis(redis::Redis),
    Amqp(amqp::Amqp),
    Kinesis(kinesis::Kinesis),
    S3(s3::S3),
    Http(http::Http),
}

impl Sink {
    /// A sink that has not connected yet; `http` is the node's shared HTTP client.
    pub(crate) fn new(name: String, config: SinkConfig, http: &HttpClient) -> Self {
        let client = match &config {
            SinkConfig::Nats(c) => Client::Nats(nats::Nats::new(c.clone())),
            SinkConfig::Redis(c) => Client::Redis(redis::Redis::new(c.clone())),
            SinkConfig::Amqp(c) => Client::Amqp(amqp::Amqp::new(c.clone())),
            SinkConfig::Kinesis(c) => Client::Kinesis(kinesis::Kinesis::new(c.clone())),
            SinkConfig::S3(c) => Client::S3(s3::S3::new(c.clone())),
            SinkConfig::Http(c) => Client::Http(http::Http::new(c.clone(), http.clone())),
            SinkConfig::Kafka(never) => match *never {},
        };
        Self {
            name,
            config,
            client,
        }
    }

    /// Refuses, before anything is sent, records the sink could never take (Kinesis: a
    /// record over 1 MiB, a partition key over 256 characters).
    pub(crate) fn check_items(&self, items: &[Item]) -> Result<(), StepError> {
        match &self.client {
            Client::Kinesis(_) => kinesis::check_items(items),
            _ => Ok(()),
        }
    }

    /// The bytes an item counts for against the sink's batch limit.
    pub(crate) fn item_size(&self, item: &Item) -> usize {
        match &self.client {
            Client::Kinesis(_) => item.payload.len() + item.partition_key().len(),
            _ => item.payload.len(),
        }
    }

    /// Sends one batch.
    pub(crate) async fn send(&self, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let name = self.name.as_str();
        match &self.client {
            Client::Nats(c) => c.send(name, out).await,
            Client::Redis(c) => c.send(name, out).await,
            Client::Amqp(c) => c.send(name, out).await,
            Client::Kinesis(c) => c.send(name, out).await,
            Client::S3(c) => c.send(name, out).await,
            Client::Http(c) => c.send(name, out).await,
        }
    }
}

/// A setting written with `{{ secrets.… }}`, rendered.
fn render(sink: &str, setting: &str, text: &str, secrets: &Secrets) -> Result<String, SinkError> {
    secrets.render(text).map_err(|e| SinkError::Render {
        sink: sink.to_owned(),
        setting: setting.to_owned(),
        message: chain(&e),
    })
}

/// The error for a failed connection to `url`, scrubbed of its password.
fn connect_error(sink: &str, url: &str, err: &dyn std::error::Error) -> SinkError {
    connect_failed(sink, url, &chain(err))
}

/// The error for a failed connection to `url` for `reason`, scrubbed of its password.
fn connect_failed(sink: &str, url: &str, reason: &str) -> SinkError {
    SinkError::Connect {
        sink: sink.to_owned(),
        shown: crate::url::shown(url),
        reason: crate::url::scrub(reason, url),
    }
}

/// The error for a failed send, scrubbed of the password in `url` (when there is one).
fn send_error(sink: &str, url: Option<&str>, reason: &str) -> SinkError {
    SinkError::Send {
        sink: sink.to_owned(),
        reason: url.map_or_else(|| reason.to_owned(), |url| crate::url::scrub(reason, url)),
    }
}

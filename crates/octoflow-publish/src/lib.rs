//! The `publish` step kind of octoflow: a list of records sent to a named sink — NATS
//! `JetStream`, a Redis stream, an AMQP exchange, a Kinesis stream, an S3 bucket or an HTTP
//! endpoint — as JSON or Avro, in batches, each record with a stable message id.
//!
//! Sinks are named in the node's config (`sinks:`, parsed as [`SinkConfig`]); each opens
//! its connection at its first use, so loading or validating a flow never dials, and then
//! shares it with every step. Records a sink refuses in part (Kinesis `ErrorCode`s, AMQP
//! nacks, missing NATS acks, HTTP 5xx) are sent again within the attempt; see [`Publish`]
//! and `docs/step-kinds/publish.md`.
//!
//! A binary registers the kind with its sinks and its shared HTTP client:
//! ```
//! use std::collections::BTreeMap;
//! use octoflow_core::step::Registry;
//! use octoflow_publish::{Publish, SinkConfig};
//!
//! let sinks: BTreeMap<String, SinkConfig> = serde_json::from_str(
//!     r#"{"events": {"kind": "nats", "url": "nats://127.0.0.1:4222",
//!                    "subject": "pc.reserve", "stream": "PCRESERVE"}}"#,
//! ).unwrap();
//! let mut registry = Registry::new();
//! registry.register(Publish::new(sinks, || reqwest::Client::builder().build()));
//! assert!(registry.contains("publish"));
//! ```

mod batch;
mod config;
mod deliver;
mod encode;
mod http_client;
mod publish;
mod schema;
mod settings;
mod sinks;
mod url;

pub use config::{
    AmqpConfig, HttpSinkConfig, KinesisConfig, NatsConfig, RedisConfig, S3Config, SinkConfig,
    Unsupported,
};
pub use publish::Publish;
pub use settings::PublishSettings;

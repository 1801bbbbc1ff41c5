//! `sinks:` in `config.yml` (SPEC §12): one named entry per place a `publish` step can send
//! records to, tagged by `kind`. Parsing never dials: a sink connects at its first use.
//! The doc comments here are the sink tables of `docs/step-kinds/publish.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// The most records one batch may hold on a sink that sets no lower limit.
const MAX_BATCH: usize = 10_000;
/// The most records one Kinesis `PutRecords` call may carry.
pub(crate) const KINESIS_MAX_RECORDS: usize = 500;
/// The most bytes (data and partition keys) one Kinesis `PutRecords` call may carry.
pub(crate) const KINESIS_MAX_BYTES: usize = 5 * 1024 * 1024;
/// The default number of records per batch.
pub(crate) const DEFAULT_BATCH: usize = 500;

/// One entry of `sinks:` in `config.yml`: a `kind` and that kind's settings.
///
/// `kind: kafka` is named by SPEC §4.3 but not built in: such an entry fails to load with
/// ``sink kind `kafka` is not supported by this build``.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    /// NATS with `JetStream`.
    Nats(NatsConfig),
    /// A Redis stream.
    Redis(RedisConfig),
    /// An AMQP 0.9.1 exchange (`RabbitMQ`).
    Amqp(AmqpConfig),
    /// An AWS Kinesis data stream (or kinesalite).
    Kinesis(KinesisConfig),
    /// An S3 bucket (or a compatible store: moto, `MinIO`).
    S3(S3Config),
    /// An HTTP endpoint that takes batches by `POST`.
    Http(HttpSinkConfig),
    /// Kafka: refused when the config is read, as this build has no Kafka client.
    Kafka(Unsupported),
}

impl SinkConfig {
    /// Every URL-like setting (`url`, `endpoint`), as written, so the binary can hide the
    /// passwords they hold the way it hides secrets.
    pub fn urls(&self) -> Vec<&str> {
        match self {
            Self::Nats(c) => vec![c.url.as_str()],
            Self::Redis(c) => vec![c.url.as_str()],
            Self::Amqp(c) => vec![c.url.as_str()],
            Self::Kinesis(c) => c.endpoint.iter().map(String::as_str).collect(),
            Self::S3(c) => c.endpoint.iter().map(String::as_str).collect(),
            Self::Http(c) => vec![c.url.as_str()],
            Self::Kafka(never) => match *never {},
        }
    }

    /// The kind's name, as written after `kind:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
            Self::Amqp(_) => "amqp",
            Self::Kinesis(_) => "kinesis",
            Self::S3(_) => "s3",
            Self::Http(_) => "http",
            Self::Kafka(never) => match *never {},
        }
    }

    /// The most records one batch may hold on this sink.
    pub(crate) fn max_batch(&self) -> usize {
        match self {
            Self::Kinesis(_) => KINESIS_MAX_RECORDS,
            _ => MAX_BATCH,
        }
    }

    /// The most payload bytes one batch may hold, when the sink has a limit.
    pub(crate) fn max_batch_bytes(&self) -> Option<usize> {
        match self {
            Self::Kinesis(_) => Some(KINESIS_MAX_BYTES),
            _ => None,
        }
    }

    /// Whether the sink sends each record on its own, so that a `key` means something
    /// (S3 objects and HTTP bodies hold whole batches).
    pub(crate) fn uses_key(&self) -> bool {
        matches!(
            self,
            Self::Nats(_) | Self::Redis(_) | Self::Amqp(_) | Self::Kinesis(_)
        )
    }
}

/// `kind: nats`: each record is published to a `JetStream` stream and its ack awaited.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server, `nats://host:4222` (`nats://user:password@host:4222` with credentials);
    /// may hold `{{ secrets.… }}`.
    pub url: String,
    /// The subject every record is published to.
    pub subject: String,
    /// The `JetStream` stream that must take the subject; a publish that lands elsewhere
    /// (or nowhere) is refused.
    pub stream: String,
}

/// `kind: redis`: each record is appended to a stream with `XADD`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The server, `redis://host:6379` (`redis://:password@host:6379/0`, `rediss://` for
    /// TLS); may hold `{{ secrets.… }}`.
    pub url: String,
    /// The stream's key.
    pub stream: String,
    /// Trim the stream to about this many entries at each append (`MAXLEN ~ n`).
    #[serde(default)]
    pub maxlen: Option<u64>,
}

/// `kind: amqp`: each record is published to an exchange with publisher confirms.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// The broker, `amqp://user:password@host:5672/%2f` (`amqps://` for TLS); may hold
    /// `{{ secrets.… }}`.
    pub url: String,
    /// The exchange; `""` is the default exchange, which routes to the queue named by the
    /// routing key.
    #[serde(default)]
    pub exchange: String,
    /// The routing key, unless the step's `key` gives one per record.
    #[serde(default)]
    pub routing_key: String,
}

/// `kind: kinesis`: records are sent with `PutRecords`, at most 500 records and 5 MiB a
/// call. Credentials come from the standard AWS chain (`AWS_ACCESS_KEY_ID`, …, profiles,
/// web identity, ECS, instance metadata).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    /// The stream's name, or its ARN (`arn:aws:kinesis:…`).
    pub stream: String,
    /// The AWS region, `us-east-1`.
    pub region: String,
    /// Another endpoint (kinesalite, `LocalStack`): `http://127.0.0.1:4567`. With it, the
    /// credentials come from the environment or a profile only, and dummy ones are used
    /// when there are none (local emulators do not check them).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `kind: s3`: each batch becomes one object, JSON lines or an Avro object container file.
/// Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
/// web identity, ECS or instance metadata.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Put before every object name, `exports/` (keep the trailing `/` for a folder).
    #[serde(default)]
    pub prefix: String,
    /// The AWS region, `us-east-1`.
    pub region: String,
    /// Another endpoint (moto, `MinIO`): `http://127.0.0.1:5000`, addressed path-style; an
    /// `http://` endpoint is allowed, and dummy credentials are used when none are set.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `kind: http`: each batch is sent as one `POST`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The URL to post batches to, `http://` or `https://`; may hold `{{ secrets.… }}`.
    pub url: String,
    /// Headers sent with every batch, name to value; values may hold `{{ secrets.… }}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A sink kind this build does not have. No value of it exists: reading one fails.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {}

impl fmt::Debug for Unsupported {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// Nothing is a valid value of a kind this build does not have.
impl schemars::JsonSchema for Unsupported {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Unsupported".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::Schema::from(false)
    }
}

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "sink kind `kafka` is not supported by this build",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> Result<SinkConfig, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_and_names_its_urls() {
        let nats = parse(
            json!({"kind": "nats", "url": "nats://u:p@h:4222", "subject": "a.b", "stream": "S"}),
        )
        .unwrap();
        assert_eq!(nats.urls(), ["nats://u:p@h:4222"]);
        assert_eq!(nats.kind(), "nats");
        let redis =
            parse(json!({"kind": "redis", "url": "redis://h", "stream": "s", "maxlen": 10}))
                .unwrap();
        assert!(matches!(&redis, SinkConfig::Redis(c) if c.maxlen == Some(10)));
        let amqp = parse(json!({"kind": "amqp", "url": "amqp://h", "routing_key": "q"})).unwrap();
        assert!(matches!(&amqp, SinkConfig::Amqp(c) if c.exchange.is_empty()));
        let kinesis =
            parse(json!({"kind": "kinesis", "stream": "s", "region": "us-east-1"})).unwrap();
        assert!(kinesis.urls().is_empty());
        assert_eq!(kinesis.max_batch(), 500);
        let s3 = parse(json!({"kind": "s3", "bucket": "b", "region": "r", "endpoint": "http://x"}))
            .unwrap();
        assert_eq!(s3.urls(), ["http://x"]);
        let http = parse(json!({"kind": "http", "url": "https://x/in", "headers": {"X-Key": "k"}}))
            .unwrap();
        assert_eq!(http.urls(), ["https://x/in"]);
    }

    #[test]
    fn kafka_and_unknown_fields_are_load_errors() {
        let err = parse(json!({"kind": "kafka", "brokers": ["h:9092"], "topic": "t"})).unwrap_err();
        assert!(
            err.contains("sink kind `kafka` is not supported by this build"),
            "{err}"
        );
        let err = parse(json!({"kind": "redis", "url": "redis://h", "stream": "s", "maxln": 3}))
            .unwrap_err();
        assert!(err.contains("unknown field `maxln`"), "{err}");
        let err = parse(json!({"kind": "sqs", "url": "x"})).unwrap_err();
        assert!(err.contains("unknown variant `sqs`"), "{err}");
    }
}

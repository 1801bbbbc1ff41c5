//! The `publish` block: which sink, which records, how each is named, keyed and encoded,
//! how many go in a batch, and how often refused records are sent again. The doc comments
//! here are the settings table of `docs/step-kinds/publish.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use octoflow_core::error::chain;
use octoflow_core::expr::{Expr, strip_braces};
use octoflow_core::flow::suggest;
use octoflow_core::step::prelude::*;
use serde::Deserializer;

use crate::config::{DEFAULT_BATCH, SinkConfig};
use crate::schema::SchemaSource;

/// The settings of a `publish` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// The sink to publish to: a name under `sinks:` in `config.yml`.
    pub(crate) sink: String,
    /// Where in `data` the list of records is. The step's own `data_key` works the same.
    pub(crate) data_key: Option<String>,
    /// An expression over `record`, `index` and `params` giving each record's key: the
    /// Kinesis partition key, the AMQP routing key, a `key` field of the Redis entry, an
    /// `Octoflow-Key` header on NATS. Default: the message id (Kinesis), the sink's
    /// `routing_key` (AMQP), none (Redis, NATS). Not allowed for `s3` and `http` sinks.
    pub(crate) key: Option<RecordExpr>,
    /// An expression over `record`, `index` and `params` giving each record's message id.
    /// Default: `<run id>:<step>:<visit>:<index>`, the same in every attempt of one visit.
    pub(crate) message_id: Option<RecordExpr>,
    /// Records per batch; default 500. At most 500 for Kinesis (which also keeps each call
    /// under 5 MiB), 10 000 for the others.
    pub(crate) batch_size: Option<usize>,
    /// `json` (default): each record as its JSON text; `avro`: each record as an Avro datum
    /// (an object container file for `s3` and `http`), checked against `schema`.
    #[serde(default)]
    pub(crate) encoding: Encoding,
    /// The Avro schema, for `encoding: avro`: inline (a YAML/JSON object, or its JSON text),
    /// a file path (relative to the data directory), or an `http(s)://` URL fetched once
    /// per process.
    pub(crate) schema: Option<SchemaSource>,
    /// How records a sink refuses are sent again within one attempt.
    #[serde(default)]
    pub(crate) retry: Resend,
}

/// How records are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Encoding {
    /// JSON text.
    #[default]
    Json,
    /// Avro binary, against `schema`.
    Avro,
}

/// Re-sending of refused records inside one attempt (Kinesis `ErrorCode`s, AMQP nacks,
/// NATS publishes without an ack, HTTP 5xx/429/408 answers).
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resend {
    /// How many times refused records are sent again; default 3, `0` never.
    #[serde(default = "Resend::default_attempts")]
    pub(crate) attempts: u32,
    /// The wait before the first re-send, doubled before each next one (at most 30s);
    /// default `200ms`.
    #[serde(default = "Resend::default_delay")]
    pub(crate) delay: Dur,
}

impl Resend {
    /// The longest wait between two sends.
    const MAX_DELAY: Duration = Duration::from_secs(30);

    fn default_attempts() -> u32 {
        3
    }

    fn default_delay() -> Dur {
        Dur(Duration::from_millis(200))
    }

    /// The wait before re-send number `n` (from 1): `delay`, doubled each time.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.delay.get().saturating_mul(factor).min(Self::MAX_DELAY)
    }
}

impl Default for Resend {
    fn default() -> Self {
        Self {
            attempts: Self::default_attempts(),
            delay: Self::default_delay(),
        }
    }
}

/// An expression evaluated once per record (`record`, `index` and `params` in scope),
/// compiled when the flow is loaded.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(transparent)]
pub(crate) struct RecordExpr(#[schemars(with = "String")] Expr);

impl RecordExpr {
    /// The compiled expression.
    pub(crate) fn expr(&self) -> &Expr {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RecordExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Expr::parse(strip_braces(&text))
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("invalid expression: {}", chain(&e))))
    }
}

impl PublishSettings {
    /// Records per batch on `sink`.
    pub(crate) fn batch_size(&self, sink: &SinkConfig) -> usize {
        self.batch_size
            .unwrap_or(DEFAULT_BATCH)
            .clamp(1, sink.max_batch())
    }

    /// Load-time problems: an unknown sink, a batch size the sink cannot take, a schema
    /// that does not match the encoding, a `key` the sink cannot use, a schema file outside
    /// the allowed directories.
    pub(crate) fn problems(
        &self,
        sinks: &BTreeMap<String, SinkConfig>,
        cx: &CheckCx<'_>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let sink = sinks.get(&self.sink);
        if sink.is_none() {
            problems.push(Problem::at("sink", unknown_sink(&self.sink, sinks)));
        }
        if let Some(size) = self.batch_size {
            let max = sink.map_or(usize::MAX, SinkConfig::max_batch);
            if size == 0 || size > max {
                let kind = sink.map_or("", SinkConfig::kind);
                problems.push(Problem::at(
                    "batch_size",
                    format!("`batch_size` must be 1 to {max} for a `{kind}` sink, not {size}"),
                ));
            }
        }
        if let Some(sink) = sink
            && self.key.is_some()
            && !sink.uses_key()
        {
            problems.push(Problem::at(
                "key",
                format!(
                    "`key` has no use on sink `{}` (kind `{}`), which sends whole batches",
                    self.sink,
                    sink.kind()
                ),
            ));
        }
        match (self.encoding, &self.schema) {
            (Encoding::Avro, None) => problems.push(Problem::at(
                "schema",
                "`encoding: avro` needs a `schema` (inline, a file or a URL)",
            )),
            (Encoding::Json, Some(_)) => problems.push(Problem::at(
                "schema",
                "`schema` is only used with `encoding: avro`",
            )),
            _ => {}
        }
        if let (Some(SchemaSource::File(path)), Some(files)) = (&self.schema, cx.files)
            && let Err(err) = files.resolve(path)
        {
            problems.push(Problem::at("schema", chain(&err)));
        }
        problems
    }
}

/// ``unknown sink `x`; did you mean `y`?``, or where to add it.
pub(crate) fn unknown_sink(name: &str, sinks: &BTreeMap<String, SinkConfig>) -> String {
    match suggest(name, sinks.keys().map(String::as_str)) {
        Some(best) => format!("unknown sink `{name}`; did you mean `{best}`?"),
        None if sinks.is_empty() => {
            format!(
                "unknown sink `{name}`; no sinks are configured (add it under `sinks:` in config.yml)"
            )
        }
        None => {
            let names: Vec<_> = sinks.keys().map(|k| format!("`{k}`")).collect();
            format!(
                "unknown sink `{name}`; configured sinks are {}",
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(value: Value) -> Result<PublishSettings, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn sinks() -> BTreeMap<String, SinkConfig> {
        serde_json::from_value(json!({
            "events": {"kind": "nats", "url": "nats://h", "subject": "s", "stream": "S"},
            "stream": {"kind": "kinesis", "stream": "k", "region": "us-east-1"},
            "bucket": {"kind": "s3", "bucket": "b", "region": "us-east-1"},
        }))
        .unwrap()
    }

    fn problems(value: Value) -> Vec<String> {
        let cx = CheckCx {
            templates_dir: None,
            files: None,
            registry: None,
        };
        settings(value)
            .unwrap()
            .problems(&sinks(), &cx)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn defaults() {
        let s = settings(json!({"sink": "events"})).unwrap();
        assert_eq!(s.encoding, Encoding::Json);
        assert_eq!(s.retry.attempts, 3);
        assert_eq!(s.retry.backoff(1), Duration::from_millis(200));
        assert_eq!(s.retry.backoff(3), Duration::from_millis(800));
        assert_eq!(s.retry.backoff(40), Duration::from_secs(30));
        assert_eq!(s.batch_size(&sinks()["events"]), 500);
        assert!(problems(json!({"sink": "events"})).is_empty());
    }

    #[test]
    fn shape_errors() {
        let err = settings(json!({"sink": "e", "sinc": 1})).unwrap_err();
        assert!(err.contains("unknown field `sinc`"), "{err}");
        let err = settings(json!({"sink": "e", "key": "record.("})).unwrap_err();
        assert!(err.contains("invalid expression"), "{err}");
        let err = settings(json!({"sink": "e", "encoding": "xml"})).unwrap_err();
        assert!(err.contains("unknown variant `xml`"), "{err}");
        let err =
            settings(json!({"sink": "e", "retry": {"attempts": 2, "backoff": "x"}})).unwrap_err();
        assert!(err.contains("unknown field `backoff`"), "{err}");
        assert!(settings(json!({"sink": "e", "key": "{{ record.id }}"})).is_ok());
    }

    #[test]
    fn load_time_problems() {
        assert_eq!(
            problems(json!({"sink": "evnts"})),
            ["sink: unknown sink `evnts`; did you mean `events`?"]
        );
        assert_eq!(
            problems(json!({"sink": "stream", "batch_size": 501})),
            ["batch_size: `batch_size` must be 1 to 500 for a `kinesis` sink, not 501"]
        );
        assert_eq!(
            problems(json!({"sink": "bucket", "key": "record.id"})),
            ["key: `key` has no use on sink `bucket` (kind `s3`), which sends whole batches"]
        );
        assert_eq!(
            problems(json!({"sink": "events", "encoding": "avro"})),
            ["schema: `encoding: avro` needs a `schema` (inline, a file or a URL)"]
        );
        assert_eq!(
            problems(json!({"sink": "events", "schema": "s.avsc"})),
            ["schema: `schema` is only used with `encoding: avro`"]
        );
        let none = BTreeMap::new();
        assert_eq!(
            unknown_sink("x", &none),
            "unknown sink `x`; no sinks are configured (add it under `sinks:` in config.yml)"
        );
        assert_eq!(
            unknown_sink("zzz", &sinks()),
            "unknown sink `zzz`; configured sinks are `bucket`, `events`, `stream`"
        );
    }
}

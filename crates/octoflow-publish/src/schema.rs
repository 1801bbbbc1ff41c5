//! Avro schemas: where `schema:` points (inline, a file, a URL), parsing, and the
//! process-wide cache of schemas fetched from URLs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;
use serde::Deserializer;

use crate::http_client::HttpClient;
use crate::url::shown;

/// A parsed Avro schema with what encoding needs besides it.
pub(crate) struct AvroSchema {
    /// The schema.
    pub(crate) schema: Schema,
    /// Its JSON text, written into object container files.
    pub(crate) json: String,
    /// Every named type (records, enums, fixed) by full name, to follow references.
    pub(crate) names: HashMap<Name, Schema>,
}

impl fmt::Debug for AvroSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AvroSchema").field(&self.json).finish()
    }
}

impl AvroSchema {
    /// Parses a schema written as JSON text.
    pub(crate) fn parse_str(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("invalid Avro schema: {e}"))?;
        Self::parse_value(&value)
    }

    /// Parses a schema given as a JSON value.
    pub(crate) fn parse_value(value: &Value) -> Result<Self, String> {
        let schema =
            Schema::parse(value).map_err(|e| format!("invalid Avro schema: {}", chain(&e)))?;
        let names = ResolvedSchema::try_from(&schema)
            .map_err(|e| format!("invalid Avro schema: {}", chain(&e)))?
            .get_names()
            .iter()
            .map(|(name, schema)| (name.clone(), (*schema).clone()))
            .collect();
        let json =
            serde_json::to_string(&schema).map_err(|e| format!("invalid Avro schema: {e}"))?;
        Ok(Self {
            schema,
            json,
            names,
        })
    }
}

/// Where the schema of a step is.
pub(crate) enum SchemaSource {
    /// Written in the flow, parsed when it was loaded.
    Inline(Arc<AvroSchema>),
    /// A file, relative to the data directory, read at each run.
    File(String),
    /// An `http(s)://` URL, fetched at first use and kept for the life of the process.
    Url(String),
}

impl fmt::Debug for SchemaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(schema) => f.debug_tuple("Inline").field(schema).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Url(url) => f.debug_tuple("Url").field(&shown(url)).finish(),
        }
    }
}

impl schemars::JsonSchema for SchemaSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AvroSchemaSource".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An Avro schema written inline (a mapping, or its JSON text), a file path relative to the data directory, or an http(s) URL.",
            "type": ["object", "array", "string"]
        })
    }
}

impl<'de> Deserialize<'de> for SchemaSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let inline = |schema: Result<AvroSchema, String>| {
            schema
                .map(|s| Self::Inline(Arc::new(s)))
                .map_err(serde::de::Error::custom)
        };
        match &value {
            Value::Object(_) | Value::Array(_) => inline(AvroSchema::parse_value(&value)),
            Value::String(text) => {
                let text = text.trim();
                if text.starts_with(['{', '[', '"']) {
                    inline(AvroSchema::parse_str(text))
                } else if text.starts_with("http://") || text.starts_with("https://") {
                    Ok(Self::Url(text.to_owned()))
                } else if text.is_empty() {
                    Err(serde::de::Error::custom(
                        "`schema` is empty; give an Avro schema, a file path or a URL",
                    ))
                } else {
                    Ok(Self::File(text.to_owned()))
                }
            }
            other => Err(serde::de::Error::custom(format!(
                "`schema` is {}; give an Avro schema, a file path or a URL",
                value_kind(other)
            ))),
        }
    }
}

/// Schemas fetched from URLs, kept for the life of the process. A failed fetch is not kept.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    by_url: tokio::sync::Mutex<HashMap<String, Arc<AvroSchema>>>,
}

impl SchemaCache {
    /// The schema of `source`: inline as it is, a file read now, a URL from the cache or
    /// fetched with `http` (once, even when several steps ask at the same time).
    pub(crate) async fn load(
        &self,
        source: &SchemaSource,
        cx: &StepCx<'_>,
        http: &HttpClient,
    ) -> Result<Arc<AvroSchema>, StepError> {
        match source {
            SchemaSource::Inline(schema) => Ok(schema.clone()),
            SchemaSource::File(path) => {
                let safe = cx
                    .files()
                    .resolve(path)
                    .map_err(|e| StepError::fatal(format!("cannot use `schema`: {}", chain(&e))))?;
                let text = tokio::fs::read_to_string(safe.as_path())
                    .await
                    .map_err(|e| {
                        StepError::fatal(format!("cannot read the Avro schema `{path}`: {e}"))
                    })?;
                AvroSchema::parse_str(&text)
                    .map(Arc::new)
                    .map_err(|e| StepError::fatal(format!("schema `{path}`: {e}")))
            }
            SchemaSource::Url(url) => {
                let mut cache = self.by_url.lock().await;
                if let Some(schema) = cache.get(url) {
                    return Ok(schema.clone());
                }
                let schema = Arc::new(fetch(url, http).await?);
                cache.insert(url.clone(), schema.clone());
                Ok(schema)
            }
        }
    }
}

/// Fetches and parses the schema at `url`; errors name the URL (without credentials).
async fn fetch(url: &str, http: &HttpClient) -> Result<AvroSchema, StepError> {
    let shown = shown(url);
    let fail = |retryable: bool, why: String| StepError::Failed {
        message: format!("cannot fetch the Avro schema `{shown}`: {why}"),
        retryable,
    };
    let http = http
        .get()
        .map_err(|reason| fail(false, reason.to_owned()))?;
    let answer = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(true, crate::url::scrub(&chain(&e.without_url()), url)))?;
    let status = answer.status();
    if !status.is_success() {
        let retryable = status.is_server_error() || status.as_u16() == 429;
        return Err(fail(retryable, format!("status {}", status.as_u16())));
    }
    let text = answer
        .text()
        .await
        .map_err(|e| fail(true, chain(&e.without_url())))?;
    AvroSchema::parse_str(&text).map_err(|e| fail(false, e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn source(value: Value) -> Result<SchemaSource, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn sources_are_told_apart() {
        let record =
            json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]});
        assert!(matches!(
            source(record.clone()),
            Ok(SchemaSource::Inline(_))
        ));
        assert!(matches!(
            source(json!(record.to_string())),
            Ok(SchemaSource::Inline(_))
        ));
        assert!(matches!(
            source(json!("\"string\"")),
            Ok(SchemaSource::Inline(_))
        ));
        assert!(
            matches!(source(json!("https://reg/x.avsc")), Ok(SchemaSource::Url(u)) if u == "https://reg/x.avsc")
        );
        assert!(
            matches!(source(json!("schemas/x.avsc")), Ok(SchemaSource::File(p)) if p == "schemas/x.avsc")
        );
        let err = source(json!({"type": "record", "name": "R"})).unwrap_err();
        assert!(err.starts_with("invalid Avro schema"), "{err}");
        let err = source(json!(3)).unwrap_err();
        assert!(err.contains("`schema` is a number"), "{err}");
    }

    #[test]
    fn named_types_are_collected() {
        let schema = AvroSchema::parse_value(&json!({
            "type": "record", "name": "R", "namespace": "n",
            "fields": [
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
                {"name": "again", "type": "Kind"}
            ]
        }))
        .unwrap();
        let names: Vec<String> = schema.names.keys().map(|n| n.fullname(None)).collect();
        assert!(names.contains(&"n.Kind".to_owned()), "{names:?}");
        assert!(names.contains(&"n.R".to_owned()), "{names:?}");
    }
}

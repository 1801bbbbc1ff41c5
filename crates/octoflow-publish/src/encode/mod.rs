//! How records become bytes: JSON text, or Avro datums checked against a schema; and how a
//! batch becomes one body (a JSON array, JSON lines, or an Avro object container file).

mod avro;
mod container;

use std::sync::Arc;

use apache_avro::writer::datum::GenericDatumWriter;
use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;

use crate::schema::AvroSchema;

/// The encoding of one step's records.
#[derive(Debug, Clone)]
pub(crate) enum Encoder {
    /// Each record as its JSON text.
    Json,
    /// Each record as an Avro datum of this schema.
    Avro(Arc<AvroSchema>),
}

/// How a batch of JSON records is laid out in one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `[r1,r2,…]`.
    Array,
    /// One record per line.
    Lines,
}

impl Encoder {
    /// The `Content-Type` of one record, and of a batch body.
    pub(crate) fn content_type(&self, layout: Option<Layout>) -> &'static str {
        match (self, layout) {
            (Self::Json, Some(Layout::Lines)) => "application/x-ndjson",
            (Self::Json, _) => "application/json",
            (Self::Avro(_), _) => "avro/binary",
        }
    }

    /// The file extension of a batch body.
    pub(crate) fn extension(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Avro(_) => "avro",
        }
    }

    /// Every record's bytes, in order. The first record that cannot be encoded fails the
    /// step, naming its index (and, for Avro, the field).
    pub(crate) fn encode_all(&self, records: &[Value]) -> Result<Vec<Vec<u8>>, StepError> {
        match self {
            Self::Json => records
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    serde_json::to_vec(record)
                        .map_err(|e| StepError::fatal(format!("record {i}: cannot encode: {e}")))
                })
                .collect(),
            Self::Avro(schema) => {
                let writer = GenericDatumWriter::builder(&schema.schema)
                    .build()
                    .map_err(|e| StepError::fatal(format!("invalid Avro schema: {}", chain(&e))))?;
                records
                    .iter()
                    .enumerate()
                    .map(|(i, record)| {
                        let value = avro::fit(record, &schema.schema, &schema.names).map_err(
                            |m| match m.path.as_str() {
                                "" => StepError::fatal(format!("record {i}: {}", m.problem)),
                                path => StepError::fatal(format!(
                                    "record {i}: field `{path}`: {}",
                                    m.problem
                                )),
                            },
                        )?;
                        writer.write_value_to_vec(value).map_err(|e| {
                            StepError::fatal(format!(
                                "record {i}: does not fit the Avro schema: {}",
                                chain(&e)
                            ))
                        })
                    })
                    .collect()
            }
        }
    }

    /// One body holding the encoded records `payloads`: JSON in `layout`, or an Avro
    /// object container file.
    pub(crate) fn document<'a>(
        &self,
        payloads: impl ExactSizeIterator<Item = &'a [u8]>,
        layout: Layout,
    ) -> Vec<u8> {
        match self {
            Self::Avro(schema) => container::container(&schema.json, payloads),
            Self::Json => {
                let mut out = Vec::new();
                if layout == Layout::Array {
                    out.push(b'[');
                }
                for (i, payload) in payloads.enumerate() {
                    if i > 0 && layout == Layout::Array {
                        out.push(b',');
                    }
                    out.extend_from_slice(payload);
                    if layout == Layout::Lines {
                        out.push(b'\n');
                    }
                }
                if layout == Layout::Array {
                    out.push(b']');
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_documents() {
        let encoder = Encoder::Json;
        let payloads = encoder.encode_all(&[json!({"a": 1}), json!("x")]).unwrap();
        let array = encoder.document(payloads.iter().map(Vec::as_slice), Layout::Array);
        assert_eq!(String::from_utf8(array).unwrap(), r#"[{"a":1},"x"]"#);
        let lines = encoder.document(payloads.iter().map(Vec::as_slice), Layout::Lines);
        assert_eq!(String::from_utf8(lines).unwrap(), "{\"a\":1}\n\"x\"\n");
        let empty = encoder.document(std::iter::empty(), Layout::Array);
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn avro_misfits_name_record_and_field() {
        let schema = AvroSchema::parse_value(&json!({
            "type": "record", "name": "R",
            "fields": [{"name": "patron_id", "type": "long"}, {"name": "n", "type": ["null", "string"]}]
        }))
        .unwrap();
        let encoder = Encoder::Avro(Arc::new(schema));
        let records = [json!({"patron_id": 1}), json!({"n": "x"})];
        let err = encoder.encode_all(&records).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 1: field `patron_id`: missing and not nullable"
        );
        assert!(!err.is_retryable());
        let ok = encoder.encode_all(&records[..1]).unwrap();
        assert_eq!(ok, [vec![2, 0]]);
    }
}

//! Bytes ⇄ JSON values for each `format`: parsing what is read, encoding what is written.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use octoflow_core::error::BoxError;
use octoflow_core::step::value_kind;
use serde_json::{Map, Value, json};

use super::settings::Format;

/// Why a value cannot be written in a format.
#[derive(Debug, thiserror::Error)]
pub(super) enum EncodeError {
    /// `csv` writes a list of objects.
    #[error("`csv` writes a list of objects, found {found}")]
    NotAList {
        /// The JSON type that was given.
        found: &'static str,
    },
    /// A `csv` row is not an object.
    #[error("`csv` row {index} is not an object but {found}")]
    RowNotObject {
        /// The row's position, from 0.
        index: usize,
        /// The JSON type that was given.
        found: &'static str,
    },
    /// A `csv` row has a key the header lacks.
    #[error(
        "`csv` row {index} has the key `{key}`, which is not a column (the header is the keys of the first row)"
    )]
    UnknownColumn {
        /// The row's position, from 0.
        index: usize,
        /// The extra key.
        key: String,
    },
    /// `binary` writes `{"base64": …}` or a base64 string.
    #[error("`binary` writes a base64 string or `{{\"base64\": …}}`, found {found}")]
    NotBinary {
        /// The JSON type that was given.
        found: &'static str,
    },
    /// The base64 text does not decode.
    #[error("invalid base64")]
    Base64(#[source] base64::DecodeError),
    /// The format is only read.
    #[error("`{format}` is only read; write the document as `text`")]
    ReadOnly {
        /// The format's name.
        format: &'static str,
    },
    /// The serializer refused the value.
    #[error("cannot serialize the value")]
    Serialize(#[source] BoxError),
}

/// Parses a file's bytes.
pub(super) fn decode(format: Format, bytes: Vec<u8>) -> Result<Value, BoxError> {
    Ok(match format {
        Format::Json => serde_json::from_slice(&bytes)?,
        Format::Yaml => octoflow_core::yaml::from_str(std::str::from_utf8(&bytes)?)?,
        Format::Text => Value::String(String::from_utf8(bytes)?),
        Format::Lines => Value::Array(
            String::from_utf8(bytes)?
                .lines()
                .map(|l| Value::String(l.to_owned()))
                .collect(),
        ),
        Format::Csv => decode_csv(&bytes)?,
        Format::Binary => json!({ "base64": BASE64.encode(&bytes), "bytes": bytes.len() }),
        Format::Xml => super::xml::decode(std::str::from_utf8(&bytes)?)?,
    })
}

fn decode_csv(bytes: &[u8]) -> Result<Value, BoxError> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader.headers()?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        let row: Map<String, Value> = header
            .iter()
            .zip(record.iter())
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::Array(rows))
}

/// The whole content of a file holding `value`.
pub(super) fn encode(format: Format, value: &Value) -> Result<Vec<u8>, EncodeError> {
    match format {
        Format::Json => {
            let mut bytes = serde_json::to_vec_pretty(value).map_err(boxed)?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        Format::Yaml => serde_saphyr::to_string(value)
            .map(String::into_bytes)
            .map_err(boxed),
        Format::Text => Ok(text_of(value).into_bytes()),
        Format::Lines => Ok(encode_lines(value)),
        Format::Csv => {
            let rows = csv_rows(value)?;
            encode_csv(rows, &first_keys(rows), true)
        }
        Format::Binary => decode_binary(value),
        Format::Xml => Err(EncodeError::ReadOnly {
            format: format.as_str(),
        }),
    }
}

/// What `append` adds to a file. `existing` describes the file as it is.
pub(super) fn encode_append(
    format: Format,
    value: &Value,
    existing: &Existing,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let line_based = matches!(
        format,
        Format::Json | Format::Lines | Format::Csv | Format::Yaml
    );
    if line_based && existing.needs_newline {
        out.push(b'\n');
    }
    match format {
        Format::Json => {
            out.extend(serde_json::to_vec(value).map_err(boxed)?);
            out.push(b'\n');
        }
        Format::Yaml => {
            if !existing.empty {
                out.extend_from_slice(b"---\n");
            }
            out.extend(encode(Format::Yaml, value)?);
        }
        Format::Text | Format::Lines | Format::Binary | Format::Xml => {
            out.extend(encode(format, value)?);
        }
        Format::Csv => {
            let rows = csv_rows(value)?;
            let (header, write_header) = match &existing.csv_header {
                Some(header) => (header.clone(), false),
                None => (first_keys(rows), true),
            };
            out.extend(encode_csv(rows, &header, write_header)?);
        }
    }
    Ok(out)
}

/// What `append` needs to know about the file it adds to.
#[derive(Debug, Default)]
pub(super) struct Existing {
    /// The file is missing or empty.
    pub(super) empty: bool,
    /// The file has content that does not end with a line break.
    pub(super) needs_newline: bool,
    /// The header of an existing `csv` file.
    pub(super) csv_header: Option<Vec<String>>,
}

/// The first record of a csv file.
pub(super) fn csv_header(file: impl std::io::Read) -> Result<Vec<String>, BoxError> {
    let mut reader = csv::Reader::from_reader(file);
    Ok(reader.headers()?.iter().map(ToOwned::to_owned).collect())
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(err: E) -> EncodeError {
    EncodeError::Serialize(Box::new(err))
}

/// A string as-is, any other value as compact JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn encode_lines(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    match value {
        Value::Array(items) => {
            for item in items {
                out.push_str(&text_of(item));
                out.push('\n');
            }
        }
        other => {
            out.push_str(&text_of(other));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

fn csv_rows(value: &Value) -> Result<&[Value], EncodeError> {
    match value {
        Value::Array(rows) => Ok(rows),
        other => Err(EncodeError::NotAList {
            found: value_kind(other),
        }),
    }
}

/// The header of written csv: the keys of the first row.
fn first_keys(rows: &[Value]) -> Vec<String> {
    rows.first()
        .and_then(Value::as_object)
        .map(|row| row.keys().cloned().collect())
        .unwrap_or_default()
}

fn encode_csv(
    rows: &[Value],
    header: &[String],
    write_header: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if write_header && !header.is_empty() {
        writer.write_record(header).map_err(boxed)?;
    }
    for (index, row) in rows.iter().enumerate() {
        let Value::Object(row) = row else {
            return Err(EncodeError::RowNotObject {
                index,
                found: value_kind(row),
            });
        };
        if let Some(key) = row.keys().find(|k| !header.contains(k)) {
            return Err(EncodeError::UnknownColumn {
                index,
                key: key.clone(),
            });
        }
        let cells = header.iter().map(|k| match row.get(k) {
            None | Some(Value::Null) => String::new(),
            Some(v) => text_of(v),
        });
        writer.write_record(cells).map_err(boxed)?;
    }
    writer.into_inner().map_err(|e| boxed(e.into_error()))
}

fn decode_binary(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let text = match value {
        Value::String(s) => s,
        Value::Object(map) => match map.get("base64") {
            Some(Value::String(s)) => s,
            _ => {
                return Err(EncodeError::NotBinary {
                    found: "an object without `base64`",
                });
            }
        },
        other => {
            return Err(EncodeError::NotBinary {
                found: value_kind(other),
            });
        }
    };
    BASE64.decode(text.trim()).map_err(EncodeError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn round_trip(format: Format, value: &Value) {
        let bytes = encode(format, value).unwrap();
        assert_eq!(&decode(format, bytes).unwrap(), value, "{format:?}");
    }

    #[test]
    fn formats_round_trip() {
        round_trip(Format::Json, &json!({"b": 1, "a": [true, null]}));
        round_trip(Format::Yaml, &json!({"b": 1, "a": ["x"]}));
        round_trip(Format::Text, &json!("two\nlines"));
        round_trip(Format::Lines, &json!(["a", "b"]));
        round_trip(
            Format::Csv,
            &json!([{"id": "1", "name": "a, b"}, {"id": "2", "name": ""}]),
        );
    }

    #[test]
    fn csv_refuses_unknown_columns() {
        let err = encode(Format::Csv, &json!([{"a": 1}, {"a": 2, "b": 3}])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`csv` row 1 has the key `b`, which is not a column (the header is the keys of the first row)"
        );
    }

    #[test]
    fn append_continues_an_unterminated_line() {
        let existing = Existing {
            empty: false,
            needs_newline: true,
            csv_header: None,
        };
        assert_eq!(
            encode_append(Format::Json, &json!({"a": 1}), &existing).unwrap(),
            b"\n{\"a\":1}\n"
        );
    }
}

//! A JSON record made into an Avro value that fits a schema: records, primitives, unions
//! (the first branch that fits; `null` for a missing nullable field), enums, arrays, maps,
//! fixed and the date/time logical types. What does not fit is a [`Misfit`] naming the field.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use octoflow_core::step::value_kind;
use serde_json::Value;

/// Why a value does not fit the schema, and where inside the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Misfit {
    /// `address.lines[2]`: the field path, empty for the record itself.
    pub(crate) path: String,
    /// `missing and not nullable`, `expected a string, found a number`.
    pub(crate) problem: String,
}

impl Misfit {
    fn new(problem: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            problem: problem.into(),
        }
    }

    fn expected(what: &str, found: &Value) -> Self {
        Self::new(format!("expected {what}, found {}", value_kind(found)))
    }

    /// The same misfit, one field further out.
    fn in_field(mut self, name: &str) -> Self {
        self.path = match self.path.as_str() {
            "" => name.to_owned(),
            path if path.starts_with('[') => format!("{name}{path}"),
            path => format!("{name}.{path}"),
        };
        self
    }

    /// The same misfit, inside item `index` of a list.
    fn in_item(mut self, index: usize) -> Self {
        self.path = match self.path.as_str() {
            "" => format!("[{index}]"),
            path if path.starts_with('[') => format!("[{index}]{path}"),
            path => format!("[{index}].{path}"),
        };
        self
    }
}

/// Named types by full name, to follow `Schema::Ref`s.
pub(crate) type Names = HashMap<Name, Schema>;

/// `value` as an Avro value of `schema`.
pub(crate) fn fit(value: &Value, schema: &Schema, names: &Names) -> Result<Avro, Misfit> {
    Ok(match schema {
        Schema::Array(array) => {
            let items = value
                .as_array()
                .ok_or_else(|| Misfit::expected("a list", value))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| fit(item, &array.items, names).map_err(|m| m.in_item(i)))
                .collect::<Result<Vec<_>, _>>()?;
            Avro::Array(items)
        }
        Schema::Map(map) => {
            let entries = value
                .as_object()
                .ok_or_else(|| Misfit::expected("an object", value))?;
            let entries = entries
                .iter()
                .map(|(k, v)| {
                    fit(v, &map.types, names)
                        .map(|v| (k.clone(), v))
                        .map_err(|m| m.in_field(k))
                })
                .collect::<Result<HashMap<_, _>, _>>()?;
            Avro::Map(entries)
        }
        Schema::Union(union) => self::union(value, union, names)?,
        Schema::Record(record) => self::record(value, record, names)?,
        Schema::Ref { name } => {
            let target = names
                .get(name)
                .or_else(|| {
                    names
                        .iter()
                        .find(|(n, _)| n.name() == name.name())
                        .map(|(_, s)| s)
                })
                .ok_or_else(|| Misfit::new(format!("unknown type `{}`", name.fullname(None))))?;
            fit(value, target, names)?
        }
        other => scalar(value, other)?,
    })
}

/// A value of a schema that holds no other: primitives, enums, fixed, logical types.
fn scalar(value: &Value, schema: &Schema) -> Result<Avro, Misfit> {
    Ok(match schema {
        Schema::Null => match value {
            Value::Null => Avro::Null,
            other => return Err(Misfit::expected("null", other)),
        },
        Schema::Boolean => Avro::Boolean(
            value
                .as_bool()
                .ok_or_else(|| Misfit::expected("a boolean", value))?,
        ),
        Schema::Int => Avro::Int(int(value)?),
        Schema::Long => Avro::Long(long(value)?),
        #[allow(clippy::cast_possible_truncation)] // a float holds what it can, as Avro says
        Schema::Float => Avro::Float(double(value)? as f32),
        Schema::Double => Avro::Double(double(value)?),
        Schema::Bytes => Avro::Bytes(bytes(value)?),
        Schema::String => Avro::String(
            value
                .as_str()
                .ok_or_else(|| Misfit::expected("a string", value))?
                .to_owned(),
        ),
        Schema::Enum(e) => {
            let text = value
                .as_str()
                .ok_or_else(|| Misfit::expected("a symbol of the enum", value))?;
            let index = e.symbols.iter().position(|s| s == text).ok_or_else(|| {
                let symbols: Vec<_> = e.symbols.iter().map(|s| format!("`{s}`")).collect();
                Misfit::new(format!("`{text}` is not one of {}", symbols.join(", ")))
            })?;
            Avro::Enum(u32::try_from(index).unwrap_or(u32::MAX), text.to_owned())
        }
        Schema::Fixed(fixed) => {
            let bytes = bytes(value)?;
            if bytes.len() != fixed.size {
                return Err(Misfit::new(format!(
                    "expected {} bytes, found {}",
                    fixed.size,
                    bytes.len()
                )));
            }
            Avro::Fixed(fixed.size, bytes)
        }
        Schema::Uuid(_) => {
            let text = value
                .as_str()
                .ok_or_else(|| Misfit::expected("a UUID string", value))?;
            Avro::Uuid(
                apache_avro::Uuid::parse_str(text)
                    .map_err(|_| Misfit::new(format!("`{text}` is not a UUID")))?,
            )
        }
        Schema::Date => Avro::Date(int(value)?),
        Schema::TimeMillis => Avro::TimeMillis(int(value)?),
        Schema::TimeMicros => Avro::TimeMicros(long(value)?),
        Schema::TimestampMillis => Avro::TimestampMillis(long(value)?),
        Schema::TimestampMicros => Avro::TimestampMicros(long(value)?),
        Schema::TimestampNanos => Avro::TimestampNanos(long(value)?),
        Schema::LocalTimestampMillis => Avro::LocalTimestampMillis(long(value)?),
        Schema::LocalTimestampMicros => Avro::LocalTimestampMicros(long(value)?),
        Schema::LocalTimestampNanos => Avro::LocalTimestampNanos(long(value)?),
        Schema::Decimal(_) | Schema::BigDecimal => {
            return Err(Misfit::new(
                "the `decimal` logical type is not supported; use a string or a double",
            ));
        }
        Schema::Duration(_) => {
            return Err(Misfit::new(
                "the `duration` logical type is not supported; use a long",
            ));
        }
        other => return Err(Misfit::new(format!("unexpected schema {other:?}"))),
    })
}

/// A record: each field of the schema, in its order; a missing field takes its default,
/// else `null` when nullable. Fields the schema does not name are left out.
fn record(value: &Value, record: &RecordSchema, names: &Names) -> Result<Avro, Misfit> {
    let object = value
        .as_object()
        .ok_or_else(|| Misfit::expected("an object", value))?;
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        let fitted = match (object.get(&field.name), &field.default) {
            (Some(v), _) => fit(v, &field.schema, names),
            (None, Some(default)) => fit(default, &field.schema, names).map_err(|m| {
                Misfit::new(format!(
                    "missing, and its default does not fit: {}",
                    m.problem
                ))
            }),
            (None, None) if nullable(&field.schema) => fit(&Value::Null, &field.schema, names),
            (None, None) => Err(Misfit::new("missing and not nullable")),
        };
        fields.push((
            field.name.clone(),
            fitted.map_err(|m| m.in_field(&field.name))?,
        ));
    }
    Ok(Avro::Record(fields))
}

/// A union: `null` takes the null branch; anything else the first other branch it fits.
fn union(value: &Value, union: &UnionSchema, names: &Names) -> Result<Avro, Misfit> {
    let branch = |i: usize, v: Avro| Avro::Union(u32::try_from(i).unwrap_or(u32::MAX), Box::new(v));
    let variants = union.variants();
    if value.is_null() {
        return variants
            .iter()
            .position(|s| matches!(s, Schema::Null))
            .map(|i| branch(i, Avro::Null))
            .ok_or_else(|| Misfit::new("null, and not nullable"));
    }
    let mut misfits = Vec::new();
    for (i, schema) in variants.iter().enumerate() {
        if matches!(schema, Schema::Null) {
            continue;
        }
        match fit(value, schema, names) {
            Ok(v) => return Ok(branch(i, v)),
            Err(m) => misfits.push(m),
        }
    }
    if misfits.len() == 1 {
        return Err(misfits.remove(0));
    }
    Err(Misfit::new(format!(
        "{} fits none of the union's types",
        value_kind(value)
    )))
}

/// Whether a missing value may be null.
fn nullable(schema: &Schema) -> bool {
    match schema {
        Schema::Null => true,
        Schema::Union(union) => union.is_nullable(),
        _ => false,
    }
}

fn long(value: &Value) -> Result<i64, Misfit> {
    match value.as_i64() {
        Some(n) => Ok(n),
        None if value.is_u64() => Err(Misfit::new(format!("{value} is out of range for a long"))),
        None => Err(Misfit::expected("a whole number", value)),
    }
}

fn int(value: &Value) -> Result<i32, Misfit> {
    let n = long(value)?;
    i32::try_from(n).map_err(|_| Misfit::new(format!("{n} is out of range for an int")))
}

fn double(value: &Value) -> Result<f64, Misfit> {
    value
        .as_f64()
        .ok_or_else(|| Misfit::expected("a number", value))
}

/// Bytes from a string (its UTF-8) or a list of numbers 0 to 255.
fn bytes(value: &Value) -> Result<Vec<u8>, Misfit> {
    match value {
        Value::String(text) => Ok(text.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(|| Misfit::new("expected bytes: a list of numbers 0 to 255"))
            })
            .collect(),
        other => Err(Misfit::expected("bytes (a string)", other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::AvroSchema;

    fn loan_schema() -> AvroSchema {
        AvroSchema::parse_value(&json!({
            "type": "record", "name": "Loan", "namespace": "lib",
            "fields": [
                {"name": "patron_id", "type": "long"},
                {"name": "title", "type": ["null", "string"]},
                {"name": "branch", "type": {"type": "enum", "name": "Branch", "symbols": ["MAIN", "EAST"]}},
                {"name": "home", "type": "Branch"},
                {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
                {"name": "extra", "type": {"type": "map", "values": "int"}, "default": {}},
                {"name": "score", "type": "double", "default": 0.5},
                {"name": "ok", "type": "boolean", "default": true},
                {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 0},
                {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
                    {"name": "n", "type": "int"}
                ]}}, "default": []}
            ]
        }))
        .unwrap()
    }

    #[allow(clippy::needless_pass_by_value)] // `json!(…)` at the call site reads best
    fn case(record: Value) -> Result<Avro, Misfit> {
        let schema = loan_schema();
        fit(&record, &schema.schema, &schema.names)
    }

    #[track_caller]
    #[allow(clippy::needless_pass_by_value)] // `json!(…)` at the call site reads best
    fn misfit(record: Value, path: &str, problem: &str) {
        let m = case(record).unwrap_err();
        assert_eq!((m.path.as_str(), m.problem.as_str()), (path, problem));
    }

    #[test]
    fn a_fitting_record_becomes_an_avro_record() {
        let value = case(json!({"patron_id": 7, "branch": "EAST", "home": "MAIN", "tags": ["a"], "items": [{"n": 1}], "unknown": 1}))
            .unwrap();
        let Avro::Record(fields) = value else {
            panic!("not a record: {value:?}")
        };
        assert_eq!(fields[0], ("patron_id".to_owned(), Avro::Long(7)));
        assert_eq!(
            fields[1],
            ("title".to_owned(), Avro::Union(0, Box::new(Avro::Null)))
        );
        assert_eq!(
            fields[2],
            ("branch".to_owned(), Avro::Enum(1, "EAST".to_owned()))
        );
        assert_eq!(fields[6], ("score".to_owned(), Avro::Double(0.5)));
        assert_eq!(fields.len(), 10);
        let schema = loan_schema();
        let value = fit(
            &json!({"patron_id": 7, "title": "Dune", "branch": "EAST", "home": "MAIN"}),
            &schema.schema,
            &schema.names,
        )
        .unwrap();
        assert!(value.validate(&schema.schema));
    }

    #[test]
    fn misfits_name_the_field() {
        misfit(
            json!({"branch": "MAIN", "home": "MAIN"}),
            "patron_id",
            "missing and not nullable",
        );
        misfit(
            json!({"patron_id": "7", "branch": "MAIN", "home": "MAIN"}),
            "patron_id",
            "expected a whole number, found a string",
        );
        misfit(
            json!({"patron_id": 1, "title": 3, "branch": "MAIN", "home": "MAIN"}),
            "title",
            "expected a string, found a number",
        );
        misfit(
            json!({"patron_id": 1, "branch": "WEST", "home": "MAIN"}),
            "branch",
            "`WEST` is not one of `MAIN`, `EAST`",
        );
        misfit(
            json!({"patron_id": 1, "branch": "MAIN", "home": "MAIN", "items": [{"n": 1}, {"n": 1.5}]}),
            "items[1].n",
            "expected a whole number, found a number",
        );
        misfit(
            json!({"patron_id": 1, "branch": "MAIN", "home": "MAIN", "extra": {"k": 9_999_999_999_i64}}),
            "extra.k",
            "9999999999 is out of range for an int",
        );
        misfit(json!([1]), "", "expected an object, found a list");
    }
}

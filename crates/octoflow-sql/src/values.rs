//! Reading a step's parameter values: JSON values as the typed values a database expects,
//! with messages that say what was expected.

use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;
use sqlx::types::BigDecimal;

/// What a value's text is: strings as they are, numbers and booleans as written.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn expected(what: &str, value: &Value) -> String {
    format!(
        "expected {what}, got {}",
        octoflow_core::step::value_kind(value)
    )
}

pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(expected("a boolean", other)),
    }
}

pub(crate) fn integer<T: TryFrom<i64>>(value: &Value) -> Result<T, String> {
    let whole = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| expected("an integer in range", value))
}

pub(crate) fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| expected("a number", value))
}

pub(crate) fn decimal(value: &Value) -> Result<BigDecimal, String> {
    match value {
        Value::Number(n) => BigDecimal::from_str(&n.to_string()).ok(),
        Value::String(s) => BigDecimal::from_str(s.trim()).ok(),
        _ => None,
    }
    .ok_or_else(|| expected("a decimal number", value))
}

pub(crate) fn date(value: &Value) -> Result<NaiveDate, String> {
    value
        .as_str()
        .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
        .ok_or_else(|| expected("a date `YYYY-MM-DD`", value))
}

pub(crate) fn time(value: &Value) -> Result<NaiveTime, String> {
    value
        .as_str()
        .and_then(|s| NaiveTime::from_str(s.trim()).ok())
        .ok_or_else(|| expected("a time `HH:MM:SS`", value))
}

/// A timestamp without zone: `2026-01-02 03:04:05[.fff]`, with a space or a `T`; a value
/// with a zone is taken in UTC.
pub(crate) fn timestamp(value: &Value) -> Result<NaiveDateTime, String> {
    let parse = |s: &str| {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()
            .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.naive_utc()))
    };
    value
        .as_str()
        .and_then(|s| parse(s.trim()))
        .ok_or_else(|| expected("a timestamp `YYYY-MM-DD HH:MM:SS`", value))
}

/// A timestamp with zone (RFC 3339); one without a zone is taken as UTC.
pub(crate) fn timestamp_tz(value: &Value) -> Result<DateTime<Utc>, String> {
    let zoned = value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    match zoned {
        Some(t) => Ok(t),
        None => timestamp(value)
            .map(|t| t.and_utc())
            .map_err(|_| expected("a timestamp `YYYY-MM-DDTHH:MM:SSZ`", value)),
    }
}

pub(crate) fn uuid(value: &Value) -> Result<sqlx::types::Uuid, String> {
    value
        .as_str()
        .and_then(|s| sqlx::types::Uuid::parse_str(s.trim()).ok())
        .ok_or_else(|| expected("a UUID", value))
}

/// Bytes from base64 text (the form binary columns are read as).
pub(crate) fn bytes(value: &Value) -> Result<Vec<u8>, String> {
    value
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| expected("base64 text", value))
}

/// Each item of a list value, read by `item`.
pub(crate) fn list<T>(
    value: &Value,
    item: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<Option<T>>, String> {
    let Value::Array(items) = value else {
        return Err(expected("a list", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is_null() {
                Ok(None)
            } else {
                item(v).map(Some).map_err(|e| format!("item {i}: {e}"))
            }
        })
        .collect()
}

/// Base64 text of binary column data.
pub(crate) fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

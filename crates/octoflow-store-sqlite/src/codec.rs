//! How record fields become column values and back: timestamps, JSON, ids and status words.
//!
//! Timestamps are stored as fixed-width UTC text with microseconds
//! (`2026-11-23T02:20:34.123456Z`), so text order is time order and range filters work on
//! plain text comparisons. Finer precision is truncated on write.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use octoflow_core::store::{RunId, StoreError};
use rusqlite::Row;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The stored form of a timestamp.
#[cfg(test)]
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// Accepts any fraction length when reading, in case a row was written by hand.
const TIME_PARSE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.fZ";

/// A column value that does not decode into its record field.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// A stored timestamp is not in the stored form.
    #[error("invalid timestamp `{value}` in column `{column}`")]
    Timestamp {
        /// The column.
        column: &'static str,
        /// The stored text.
        value: String,
        /// Why it did not parse.
        #[source]
        source: chrono::ParseError,
    },
    /// A stored JSON value does not parse into its field.
    #[error("invalid json in column `{column}`")]
    Json {
        /// The column.
        column: &'static str,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A value cannot be encoded as JSON.
    #[error("cannot encode `{column}` as json")]
    Encode {
        /// The column.
        column: &'static str,
        /// Why it could not be encoded.
        #[source]
        source: serde_json::Error,
    },
    /// A stored word (status, stream, id) is not one this version knows.
    #[error("invalid value `{value}` in column `{column}`")]
    Word {
        /// The column.
        column: &'static str,
        /// The stored text.
        value: String,
    },
    /// A stored integer does not fit its field.
    #[error("value {value} out of range in column `{column}`")]
    Range {
        /// The column.
        column: &'static str,
        /// The stored number.
        value: i64,
    },
}

impl From<CodecError> for StoreError {
    fn from(err: CodecError) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

pub(crate) use octoflow_core::store::now;

/// The stored text of a timestamp.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    // The same text as `TIME_FORMAT`, without parsing a format string each time.
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The stored text of an optional timestamp.
pub(crate) fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

/// The stored text of a JSON-serialisable value.
pub(crate) fn json<T: Serialize + ?Sized>(
    column: &'static str,
    value: &T,
) -> Result<String, CodecError> {
    serde_json::to_string(value).map_err(|source| CodecError::Encode { column, source })
}

/// The stored text of an optional JSON-serialisable value.
pub(crate) fn opt_json<T: Serialize>(
    column: &'static str,
    value: Option<&T>,
) -> Result<Option<String>, CodecError> {
    value.map(|v| json(column, v)).transpose()
}

/// Reads a column as what it holds: text, an integer, bytes.
pub(crate) fn get<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    column: &'static str,
) -> Result<T, StoreError> {
    row.get(column).map_err(crate::error::from_sqlite)
}

/// Reads a text column.
pub(crate) fn get_text(row: &Row<'_>, column: &'static str) -> Result<String, StoreError> {
    get(row, column)
}

/// Reads a nullable text column.
pub(crate) fn get_opt_text(
    row: &Row<'_>,
    column: &'static str,
) -> Result<Option<String>, StoreError> {
    get(row, column)
}

/// Reads a timestamp column.
pub(crate) fn get_time(row: &Row<'_>, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    Ok(parse_time(column, get_text(row, column)?)?)
}

/// Reads a nullable timestamp column.
pub(crate) fn get_opt_time(
    row: &Row<'_>,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(get_opt_text(row, column)?
        .map(|value| parse_time(column, value))
        .transpose()?)
}

/// Reads a JSON column.
pub(crate) fn get_json<T: DeserializeOwned>(
    row: &Row<'_>,
    column: &'static str,
) -> Result<T, StoreError> {
    Ok(parse_json(column, &get_text(row, column)?)?)
}

/// Reads a nullable JSON column.
pub(crate) fn get_opt_json<T: DeserializeOwned>(
    row: &Row<'_>,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    Ok(get_opt_text(row, column)?
        .map(|value| parse_json(column, &value))
        .transpose()?)
}

/// Reads a column holding a word parsed with `FromStr` (a status, a stream, a run id).
pub(crate) fn get_word<T: FromStr>(row: &Row<'_>, column: &'static str) -> Result<T, StoreError> {
    Ok(parse_word(column, get_text(row, column)?)?)
}

/// Reads a nullable column holding a word parsed with `FromStr`.
pub(crate) fn get_opt_word<T: FromStr>(
    row: &Row<'_>,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    Ok(get_opt_text(row, column)?
        .map(|value| parse_word(column, value))
        .transpose()?)
}

/// Reads an attempt number.
pub(crate) fn get_attempt(row: &Row<'_>) -> Result<u32, StoreError> {
    let value: i64 = get(row, "attempt")?;
    u32::try_from(value).map_err(|_| {
        CodecError::Range {
            column: "attempt",
            value,
        }
        .into()
    })
}

/// A run's claim generation as stored (`SQLite` integers are signed).
pub(crate) fn generation(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A run's claim generation from its `claim` column.
pub(crate) fn get_generation(row: &Row<'_>) -> Result<u64, StoreError> {
    let value: i64 = get(row, "claim")?;
    u64::try_from(value).map_err(|_| {
        CodecError::Range {
            column: "claim",
            value,
        }
        .into()
    })
}

/// The stored text of a run id.
pub(crate) fn run_id(id: &RunId) -> String {
    id.0.hyphenated().to_string()
}

fn parse_time(column: &'static str, value: String) -> Result<DateTime<Utc>, CodecError> {
    match NaiveDateTime::parse_from_str(&value, TIME_PARSE_FORMAT) {
        Ok(naive) => Ok(naive.and_utc()),
        Err(source) => Err(CodecError::Timestamp {
            column,
            value,
            source,
        }),
    }
}

fn parse_json<T: DeserializeOwned>(column: &'static str, value: &str) -> Result<T, CodecError> {
    serde_json::from_str(value).map_err(|source| CodecError::Json { column, source })
}

fn parse_word<T: FromStr>(column: &'static str, value: String) -> Result<T, CodecError> {
    match value.parse() {
        Ok(word) => Ok(word),
        Err(_) => Err(CodecError::Word { column, value }),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn time_is_fixed_width_with_microseconds() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 2, 20, 34).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(time(t), "2026-11-23T02:20:34.123456Z");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(time(whole), "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn time_is_the_stored_form() {
        let t =
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::microseconds(89);
        assert_eq!(time(t), t.format(TIME_FORMAT).to_string());
    }

    #[test]
    fn time_round_trips_at_microseconds() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 2, 20, 34).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(parse_time("t", time(t)).unwrap(), t);
        assert_eq!(
            parse_time("t", "2026-11-23T02:20:34.5Z".to_owned())
                .unwrap()
                .timestamp_subsec_micros(),
            500_000
        );
    }

    #[test]
    fn bad_time_names_column_and_value() {
        let err = parse_time("created_at", "yesterday".to_owned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid timestamp `yesterday` in column `created_at`"
        );
    }
}

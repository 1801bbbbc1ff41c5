//! How record fields become column values and back: timestamps, JSON, ids and status words.
//!
//! Timestamps are `timestamptz`, which keeps microseconds: finer precision is truncated on
//! write, so a time the store makes itself ([`now`]) is truncated first, and reads back as
//! given. JSON values are `json` columns, written as their text (`$n::json`) so that objects
//! keep their keys in order, and read back through serde.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use octoflow_core::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::error::from_sqlx;

/// A column value that does not decode into its record field, or a value that cannot be
/// encoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// A value cannot be encoded as JSON.
    #[error("cannot encode `{column}` as json")]
    Encode {
        /// The column.
        column: &'static str,
        /// Why it could not be encoded.
        #[source]
        source: serde_json::Error,
    },
    /// A stored word (status, stream, role) is not one this version knows.
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

/// The longest lease kept (a century): a longer one ends then, far beyond any run, within
/// the range of `timestamptz`.
const LONGEST_LEASE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// The end of a lease of `lease` from now.
pub(crate) fn lease_end(lease: std::time::Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(lease.min(LONGEST_LEASE)).unwrap_or_default()
}

/// The JSON text of a value, bound as text and cast to `json` in the statement.
pub(crate) fn json<T: Serialize + ?Sized>(
    column: &'static str,
    value: &T,
) -> Result<String, CodecError> {
    serde_json::to_string(value).map_err(|source| CodecError::Encode { column, source })
}

/// The JSON text of an optional value.
pub(crate) fn opt_json<T: Serialize>(
    column: &'static str,
    value: Option<&T>,
) -> Result<Option<String>, CodecError> {
    value.map(|v| json(column, v)).transpose()
}

/// A run's claim generation as stored (`bigint` is signed).
pub(crate) fn generation(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a column as what it holds.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(from_sqlx)
}

/// Reads a `json` column.
pub(crate) fn get_json<T: DeserializeOwned>(
    row: &PgRow,
    column: &'static str,
) -> Result<T, StoreError> {
    Ok(get::<Json<T>>(row, column)?.0)
}

/// Reads a nullable `json` column.
pub(crate) fn get_opt_json<T: DeserializeOwned>(
    row: &PgRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    Ok(get::<Option<Json<T>>>(row, column)?.map(|json| json.0))
}

/// Reads a column holding a word parsed with `FromStr` (a status, a stream, a role).
pub(crate) fn get_word<T: FromStr>(row: &PgRow, column: &'static str) -> Result<T, StoreError> {
    let value: String = get(row, column)?;
    match value.parse() {
        Ok(word) => Ok(word),
        Err(_) => Err(CodecError::Word { column, value }.into()),
    }
}

/// Reads a non-negative integer column into an unsigned field.
pub(crate) fn get_unsigned<T: TryFrom<i64>>(
    row: &PgRow,
    column: &'static str,
) -> Result<T, StoreError> {
    let value: i64 = get(row, column)?;
    T::try_from(value).map_err(|_| CodecError::Range { column, value }.into())
}

/// Reads an attempt number (`integer`).
pub(crate) fn get_attempt(row: &PgRow) -> Result<u32, StoreError> {
    let value: i32 = get(row, "attempt")?;
    u32::try_from(value).map_err(|_| {
        CodecError::Range {
            column: "attempt",
            value: i64::from(value),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;
    use serde_json::json;

    use super::*;

    #[test]
    fn now_is_whole_microseconds() {
        assert_eq!(now().nanosecond() % 1_000, 0);
    }

    #[test]
    fn json_text_keeps_key_order() {
        let value = json!({"zeta": 1, "alpha": {"b": 2, "a": 1}});
        assert_eq!(
            super::json("data", &value).unwrap(),
            r#"{"zeta":1,"alpha":{"b":2,"a":1}}"#
        );
    }

    #[test]
    fn an_endless_lease_ends_within_range() {
        let end = lease_end(std::time::Duration::MAX);
        assert!(end > now() + chrono::Duration::days(36_000));
        assert!(end < now() + chrono::Duration::days(37_000));
    }

    #[test]
    fn generations_beyond_bigint_saturate() {
        assert_eq!(generation(7), 7);
        assert_eq!(generation(u64::MAX), i64::MAX);
    }
}

//! A row as a JSON object: each column read by its type name, the same way for both
//! databases; each backend says how a type is read (`column_json`).

use serde_json::{Map, Value};
use sqlx::{Column, Row, TypeInfo};

use crate::error::SqlError;

/// Row `row` of statement `index` as a JSON object, each column turned into JSON by
/// `column_json(row, column, type name)`; a failure names the column.
pub(crate) fn row_json<R: Row>(
    row: &R,
    index: usize,
    column_json: impl Fn(&R, usize, &str) -> Result<Value, String>,
) -> Result<Map<String, Value>, SqlError> {
    let mut object = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value =
            column_json(row, i, column.type_info().name()).map_err(|e| SqlError::Column {
                index,
                column: column.name().to_owned(),
                message: e,
            })?;
        object.insert(column.name().to_owned(), value);
    }
    Ok(object)
}

/// Reads column `$i` of `$row` as `$t` (NULL as JSON null) and turns it into JSON with
/// `$to`; a decoding error returns from the enclosing function as its message.
macro_rules! read_as {
    ($row:expr, $i:expr, $t:ty, $to:expr) => {
        $row.try_get::<Option<$t>, _>($i)
            .map_err(|e| octoflow_core::error::chain(&e))?
            .map_or(Value::Null, $to)
    };
}
pub(crate) use read_as;

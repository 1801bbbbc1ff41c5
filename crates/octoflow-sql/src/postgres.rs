//! PostgreSQL: values bound as the types the server expects for each placeholder, rows read
//! into JSON by each column's type.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, PgTypeInfo, PgValueFormat};
use sqlx::query::Query;
use sqlx::types::{BigDecimal, Json, Uuid};
use sqlx::{AssertSqlSafe, Either, Executor, Row, SqlSafeStr, Statement as _, TypeInfo, ValueRef};

use crate::backend::{Backend, Done};
use crate::error::SqlError;
use crate::output::RowSink;
use crate::rows::{read_as, row_json};
use crate::settings::Statement;
use crate::values;

/// PostgreSQL.
pub(crate) struct Postgres;

impl Backend for Postgres {
    type Db = sqlx::Postgres;
    type SessionId = i32;

    async fn session_id(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
    }

    async fn stop(conn: &mut PgConnection, id: i32) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(id)
            .execute(conn)
            .await
            .map(|_| ())
    }

    async fn run(
        conn: &mut PgConnection,
        index: usize,
        statement: &Statement,
        sink: &mut RowSink,
        batch_size: usize,
    ) -> Result<Done, SqlError> {
        let sql = AssertSqlSafe(statement.sql.clone()).into_sql_str();
        let prepared = (&mut *conn)
            .prepare(sql)
            .await
            .map_err(|e| SqlError::statement(index, &e))?;
        let types: &[PgTypeInfo] = match prepared.parameters() {
            Some(Either::Left(types)) => types,
            _ => &[],
        };
        if types.len() != statement.params.len() {
            return Err(SqlError::Statement {
                index,
                message: format!(
                    "the statement has {} placeholder(s) but {} value(s) are in `params`",
                    types.len(),
                    statement.params.len()
                ),
            });
        }
        let mut query = prepared.query();
        for (param, (value, ty)) in statement.params.iter().zip(types).enumerate() {
            query = bind(query, value, ty).map_err(|message| SqlError::Param {
                index,
                param,
                message,
            })?;
        }
        if prepared.columns().is_empty() {
            let done = query
                .execute(&mut *conn)
                .await
                .map_err(|e| SqlError::statement(index, &e))?;
            return Ok(Done::Affected(done.rows_affected()));
        }
        sink.drain(query.fetch(&mut *conn), index, batch_size, |row, index| {
            row_json(row, index, column_json)
        })
        .await?;
        Ok(Done::Rows)
    }
}

type PgQuery<'q> = Query<'q, sqlx::Postgres, PgArguments>;

/// Binds `value` as `$T`, or as a typed NULL.
macro_rules! bind_as {
    ($query:expr, $value:expr, $t:ty, $read:expr) => {
        if $value.is_null() {
            $query.bind(None::<$t>)
        } else {
            $query.bind(Some::<$t>($read($value)?))
        }
    };
}

/// Binds one value as the type the server expects for its placeholder.
fn bind<'q>(query: PgQuery<'q>, value: &Value, ty: &PgTypeInfo) -> Result<PgQuery<'q>, String> {
    Ok(match ty.name() {
        "BOOL" => bind_as!(query, value, bool, values::boolean),
        "INT2" => bind_as!(query, value, i16, values::integer::<i16>),
        "INT4" => bind_as!(query, value, i32, values::integer::<i32>),
        "INT8" => bind_as!(query, value, i64, values::integer::<i64>),
        #[allow(clippy::cast_possible_truncation)] // FLOAT4 is f32 by definition
        "FLOAT4" => bind_as!(query, value, f32, |v| values::float(v).map(|f| f as f32)),
        "FLOAT8" => bind_as!(query, value, f64, values::float),
        "NUMERIC" => bind_as!(query, value, BigDecimal, values::decimal),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" => {
            bind_as!(query, value, String, |v| Ok::<_, String>(values::text(v)))
        }
        "JSON" | "JSONB" => query.bind(Json(value.clone())),
        "UUID" => bind_as!(query, value, Uuid, values::uuid),
        "DATE" => bind_as!(query, value, NaiveDate, values::date),
        "TIME" => bind_as!(query, value, NaiveTime, values::time),
        "TIMESTAMP" => bind_as!(query, value, NaiveDateTime, values::timestamp),
        "TIMESTAMPTZ" => bind_as!(query, value, DateTime<Utc>, values::timestamp_tz),
        "BYTEA" => bind_as!(query, value, Vec<u8>, values::bytes),
        "TEXT[]" | "VARCHAR[]" => bind_as!(query, value, Vec<Option<String>>, |v| {
            values::list(v, |i| Ok(values::text(i)))
        }),
        "INT4[]" => bind_as!(query, value, Vec<Option<i32>>, |v| {
            values::list(v, values::integer::<i32>)
        }),
        "INT8[]" => bind_as!(query, value, Vec<Option<i64>>, |v| {
            values::list(v, values::integer::<i64>)
        }),
        "FLOAT8[]" => bind_as!(query, value, Vec<Option<f64>>, |v| values::list(
            v,
            values::float
        )),
        "NUMERIC[]" => bind_as!(query, value, Vec<Option<BigDecimal>>, |v| {
            values::list(v, values::decimal)
        }),
        "BOOL[]" => bind_as!(query, value, Vec<Option<bool>>, |v| values::list(
            v,
            values::boolean
        )),
        "UUID[]" => bind_as!(query, value, Vec<Option<Uuid>>, |v| values::list(
            v,
            values::uuid
        )),
        other => {
            return Err(format!(
                "placeholders of type `{other}` are not supported; cast the placeholder in the \
                 statement (`$1::text::{}`)",
                other.to_ascii_lowercase()
            ));
        }
    })
}

fn column_json(row: &PgRow, i: usize, ty: &str) -> Result<Value, String> {
    Ok(match ty {
        "BOOL" => read_as!(row, i, bool, Value::Bool),
        "INT2" => read_as!(row, i, i16, Value::from),
        "INT4" => read_as!(row, i, i32, Value::from),
        "INT8" => read_as!(row, i, i64, Value::from),
        "OID" => read_as!(row, i, sqlx::postgres::types::Oid, |o| Value::from(o.0)),
        "FLOAT4" => read_as!(row, i, f32, |f| Value::from(f64::from(f))),
        "FLOAT8" => read_as!(row, i, f64, Value::from),
        "NUMERIC" => numeric(row, i)?,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" => {
            read_as!(row, i, String, Value::String)
        }
        "JSON" | "JSONB" => read_as!(row, i, Json<Value>, |j| j.0),
        "UUID" => read_as!(row, i, Uuid, |u| Value::String(u.to_string())),
        "DATE" => read_as!(row, i, NaiveDate, |d| Value::String(d.to_string())),
        "TIME" => read_as!(row, i, NaiveTime, |t| Value::String(t.to_string())),
        "TIMESTAMP" => read_as!(row, i, NaiveDateTime, |t| {
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }),
        "TIMESTAMPTZ" => read_as!(row, i, DateTime<Utc>, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }),
        "BYTEA" => read_as!(row, i, Vec<u8>, |b| Value::String(values::base64_text(&b))),
        "BOOL[]" => read_as!(row, i, Vec<Option<bool>>, Value::from),
        "INT2[]" => read_as!(row, i, Vec<Option<i16>>, Value::from),
        "INT4[]" => read_as!(row, i, Vec<Option<i32>>, Value::from),
        "INT8[]" => read_as!(row, i, Vec<Option<i64>>, Value::from),
        "FLOAT8[]" => read_as!(row, i, Vec<Option<f64>>, Value::from),
        "TEXT[]" | "VARCHAR[]" => read_as!(row, i, Vec<Option<String>>, Value::from),
        "UUID[]" => read_as!(row, i, Vec<Option<Uuid>>, |v| {
            v.into_iter()
                .map(|u| u.map_or(Value::Null, |u| Value::String(u.to_string())))
                .collect()
        }),
        "JSONB[]" | "JSON[]" => read_as!(row, i, Vec<Json<Value>>, |v| {
            v.into_iter().map(|j| j.0).collect()
        }),
        other => {
            return Err(format!(
                "type `{other}` cannot be read yet; cast it to text in the statement (`::text`)"
            ));
        }
    })
}

/// A `numeric` column as exact decimal text with the value's scale.
fn numeric(row: &PgRow, i: usize) -> Result<Value, String> {
    let raw = row
        .try_get_raw(i)
        .map_err(|e| octoflow_core::error::chain(&e))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let text = match raw.format() {
        PgValueFormat::Binary => raw.as_bytes().ok().and_then(crate::numeric::numeric_text),
        PgValueFormat::Text => raw.as_str().ok().map(ToOwned::to_owned),
    };
    text.map(Value::String)
        .ok_or_else(|| "not a valid numeric value".to_owned())
}

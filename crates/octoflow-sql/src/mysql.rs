//! MySQL and MariaDB: values bound by their JSON type (the server converts them to the
//! column's), rows read into JSON by each column's type.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;
use sqlx::mysql::{MySqlArguments, MySqlConnection, MySqlRow};
use sqlx::query::Query;
use sqlx::types::{BigDecimal, Json};
use sqlx::{AssertSqlSafe, Either, Executor, Row, SqlSafeStr, Statement as _};

use crate::backend::{Backend, Done};
use crate::error::SqlError;
use crate::output::RowSink;
use crate::rows::{read_as, row_json};
use crate::settings::Statement;
use crate::values;

/// MySQL and MariaDB.
pub(crate) struct MySql;

impl Backend for MySql {
    type Db = sqlx::MySql;
    type SessionId = u64;

    async fn session_id(conn: &mut MySqlConnection) -> Result<u64, sqlx::Error> {
        sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(conn)
            .await
    }

    /// `KILL QUERY`: the statement stops, the session stays open.
    async fn stop(conn: &mut MySqlConnection, id: u64) -> Result<(), sqlx::Error> {
        // `KILL QUERY` takes no placeholder; the id is a number read from the server.
        let sql = AssertSqlSafe(format!("KILL QUERY {id}")).into_sql_str();
        conn.execute(sql).await.map(|_| ())
    }

    async fn run(
        conn: &mut MySqlConnection,
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
        let expected = match prepared.parameters() {
            Some(Either::Left(types)) => types.len(),
            Some(Either::Right(count)) => count,
            None => statement.params.len(),
        };
        if expected != statement.params.len() {
            return Err(SqlError::Statement {
                index,
                message: format!(
                    "the statement has {expected} placeholder(s) but {} value(s) are in `params`",
                    statement.params.len()
                ),
            });
        }
        let mut query = prepared.query();
        for value in &statement.params {
            query = bind(query, value);
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

type MySqlQuery<'q> = Query<'q, sqlx::MySql, MySqlArguments>;

/// Binds one value by its JSON type; lists and objects as JSON text.
fn bind<'q>(query: MySqlQuery<'q>, value: &Value) -> MySqlQuery<'q> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(b) => query.bind(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => query.bind(i),
            (None, Some(u)) => query.bind(u),
            (None, None) => query.bind(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => query.bind(s.clone()),
        Value::Array(_) | Value::Object(_) => query.bind(Json(value.clone())),
    }
}

fn column_json(row: &MySqlRow, i: usize, ty: &str) -> Result<Value, String> {
    Ok(match ty {
        "NULL" => Value::Null,
        "BOOLEAN" => read_as!(row, i, bool, Value::Bool),
        "TINYINT" => read_as!(row, i, i8, Value::from),
        "SMALLINT" => read_as!(row, i, i16, Value::from),
        "INT" | "MEDIUMINT" => read_as!(row, i, i32, Value::from),
        "BIGINT" => read_as!(row, i, i64, Value::from),
        "TINYINT UNSIGNED" => read_as!(row, i, u8, Value::from),
        "SMALLINT UNSIGNED" => read_as!(row, i, u16, Value::from),
        "INT UNSIGNED" | "MEDIUMINT UNSIGNED" => read_as!(row, i, u32, Value::from),
        "BIGINT UNSIGNED" => read_as!(row, i, u64, Value::from),
        "YEAR" => read_as!(row, i, u16, Value::from),
        "FLOAT" => read_as!(row, i, f32, |f| Value::from(f64::from(f))),
        "DOUBLE" => read_as!(row, i, f64, Value::from),
        "DECIMAL" => read_as!(row, i, BigDecimal, |d| Value::String(d.to_string())),
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            read_as!(row, i, String, Value::String)
        }
        "JSON" => read_as!(row, i, Json<Value>, |j| j.0),
        "DATE" => read_as!(row, i, NaiveDate, |d| Value::String(d.to_string())),
        "TIME" => read_as!(row, i, NaiveTime, |t| Value::String(t.to_string())),
        "DATETIME" => read_as!(row, i, NaiveDateTime, |t| {
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }),
        "TIMESTAMP" => read_as!(row, i, DateTime<Utc>, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }),
        // A text column with a binary collation is named as a blob too: text when it is.
        "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "VARBINARY" | "BINARY"
            if row.try_get::<Option<String>, _>(i).is_ok() =>
        {
            read_as!(row, i, String, Value::String)
        }
        "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" => {
            read_as!(row, i, Vec<u8>, |b| Value::String(values::base64_text(&b)))
        }
        other => {
            return Err(format!(
                "type `{other}` cannot be read yet; cast it in the statement (`CAST(… AS CHAR)`)"
            ));
        }
    })
}

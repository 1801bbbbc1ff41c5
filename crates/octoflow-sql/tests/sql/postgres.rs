//! PostgreSQL: types both ways, bound values, writes, transactions, saved rows, errors.

use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

use crate::support::{Scratch, Server, harness_with};

#[tokio::test]
async fn types_round_trip() {
    let Some(db) = Scratch::new(Server::Postgres).await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (i2 int2, i4 int4, i8 int8, num numeric(30,10), f8 float8, txt text,
         flag bool, day date, at timestamp, at_tz timestamptz, raw bytea, doc jsonb, id uuid,
         tags text[], nothing int4)",
    )
    .await;
    let report = db
        .harness()
        .flow(
            r#"
steps:
  - name: write
    sql:
      connection: db
      transaction: true
      query:
        - query: "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
          params: [-7, 2147483647, 9007199254740993, "12345678901234567890.0123456789", 1.5,
                   "héllo", true, "2026-03-01", "2026-03-01 10:11:12.345", "2026-03-01T10:11:12Z",
                   "AAEC/w==", {"a": [1, null]}, "67e55044-10b1-426f-9247-bb680e5fe0c8",
                   ["x", null], null]
        - query: "SELECT * FROM t"
"#,
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let result = report.step("write").result.clone().unwrap();
    assert_eq!(result["results"][0], json!({"rows_affected": 1}));
    assert_eq!(
        result["results"][1],
        json!({"row_count": 1, "rows": [{
            "i2": -7, "i4": 2_147_483_647, "i8": 9_007_199_254_740_993_i64,
            "num": "12345678901234567890.0123456789", "f8": 1.5, "txt": "héllo",
            "flag": true, "day": "2026-03-01", "at": "2026-03-01T10:11:12.345",
            "at_tz": "2026-03-01T10:11:12Z", "raw": "AAEC/w==", "doc": {"a": [1, null]},
            "id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "tags": ["x", null], "nothing": null
        }]})
    );
    db.drop_all().await;
}

#[tokio::test]
async fn a_value_that_looks_like_sql_stays_a_value() {
    let Some(db) = Scratch::new(Server::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE people (name text)").await;
    let evil = "x'); DROP TABLE people; --";
    let report = db
        .harness()
        .param("name", json!(evil))
        .flow(
            r#"
params: { name: { type: string } }
steps:
  - { name: add, sql: { connection: db, query: "INSERT INTO people VALUES ($1)", params: ["{{ params.name }}"] } }
  - { name: read, sql: { connection: db, query: "SELECT name FROM people WHERE name = $1", params: ["{{ params.name }}"] } }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("add", json!({"rows_affected": 1}))
        .assert_data("read", json!({"rows": [{"name": evil}], "row_count": 1}));
    assert_eq!(db.count("SELECT count(*) FROM people").await, 1);
    db.drop_all().await;
}

#[tokio::test]
async fn a_failed_statement_rolls_the_transaction_back() {
    let Some(db) = Scratch::new(Server::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let report = db
        .harness()
        .flow(
            r#"
steps:
  - name: both
    sql:
      connection: db
      transaction: true
      query:
        - { query: "INSERT INTO t VALUES ($1)", params: [1] }
        - { query: "INSERT INTO t VALUES ($1)", params: [1] }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("both", StepStatus::Failed);
    let error = report.step("both").error.clone().unwrap();
    assert!(
        error.starts_with("statement 2: duplicate key value violates unique constraint"),
        "{error}"
    );
    assert!(error.contains("SQLSTATE 23505"), "{error}");
    assert_eq!(db.count("SELECT count(*) FROM t").await, 0);
    db.drop_all().await;
}

#[tokio::test]
async fn many_rows_go_to_a_file_a_batch_at_a_time() {
    let Some(db) = Scratch::new(Server::Postgres).await else {
        return;
    };
    let report = db
        .harness()
        .flow(
            r#"
steps:
  - name: all
    sql:
      connection: db
      query: "SELECT n, 'row ' || n AS label FROM generate_series(1, $1) AS n"
      params: [2500]
      batch_size: 1000
      save_to: out/rows.jsonl
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("all", json!({"path": "out/rows.jsonl", "row_count": 2500}));
    let text = std::fs::read_to_string(report.data_dir().join("out/rows.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2500);
    assert_eq!(lines[2499], r#"{"n":2500,"label":"row 2500"}"#);
    db.drop_all().await;
}

#[tokio::test]
async fn wrong_values_and_placeholders_are_named() {
    let Some(db) = Scratch::new(Server::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE t (n int4, at timestamptz)").await;
    let report = db
        .harness()
        .flow(
            r#"
steps:
  - { name: count, ignore_errors: [".*"], sql: { connection: db, query: "SELECT * FROM t WHERE n = $1 AND at > $2", params: [1] } }
  - { name: kind, ignore_errors: [".*"], sql: { connection: db, query: "SELECT * FROM t WHERE n = $1", params: ["many"] } }
  - { name: syntax, sql: { connection: db, query: "SELEC 1" } }
"#,
        )
        .run()
        .await;
    assert_eq!(
        report.step("count").error.as_deref(),
        Some("statement 1: the statement has 2 placeholder(s) but 1 value(s) are in `params`")
    );
    assert_eq!(
        report.step("kind").error.as_deref(),
        Some("statement 1: `params[0]`: expected an integer in range, got a string")
    );
    let syntax = report.step("syntax").error.clone().unwrap();
    assert!(
        syntax.starts_with("statement 1: syntax error at or near"),
        "{syntax}"
    );
    db.drop_all().await;
}

#[tokio::test]
async fn a_connection_error_names_the_connection_and_hides_the_password() {
    // Port 1 on loopback: nothing listens. The password comes from a secret.
    let report = harness_with(
        "warehouse",
        "postgres://reader:{{ secrets.wh.password }}@127.0.0.1:1/x",
    )
    .secrets("- { name: wh, type: credential, username: reader, password: hunter2-pw }")
    .flow("steps: [{ name: q, sql: { connection: warehouse, query: 'SELECT 1' } }]")
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("q").error.clone().unwrap();
    assert!(error.starts_with("connection `warehouse`: "), "{error}");
    assert!(!error.contains("hunter2-pw"), "{error}");
}

#[tokio::test]
async fn unknown_connections_and_shapes_are_load_errors() {
    let problems = harness_with("warehouse", "postgres://127.0.0.1/x")
        .flow(
            r#"
steps:
  - { name: a, sql: { connection: warehous, query: "SELECT 1" } }
  - { name: b, sql: { connection: warehouse, query: [{ query: "SELECT 1" }] } }
  - { name: c, sql: { connection: warehouse, query: "SELECT 1", batch_size: 0 } }
"#,
        )
        .load()
        .unwrap_err();
    let text = problems.join("\n");
    assert!(
        text.contains(
            "steps[0].sql.connection: unknown connection `warehous`; did you mean `warehouse`?"
        ),
        "{text}"
    );
    assert!(
        text.contains("steps[1].sql.query: a list of statements needs `transaction: true`"),
        "{text}"
    );
    assert!(
        text.contains("steps[2].sql.batch_size: must be at least 1"),
        "{text}"
    );
}

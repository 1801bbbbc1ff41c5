//! MariaDB: types both ways, bound values, writes.

use octoflow_core::store::RunStatus;
use serde_json::json;

use crate::support::{Scratch, Server};

#[tokio::test]
async fn types_round_trip() {
    let Some(db) = Scratch::new(Server::MySql).await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (flag tinyint(1), small smallint, n int, big bigint unsigned,
         num decimal(30,10), f double, name varchar(50), at datetime(3), stamp timestamp NULL,
         day date, raw blob, doc json, nothing int)",
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
      query: "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
      params: [true, -3, 42, 18446744073709551615, "12345678901234567890.0123456789", 2.25,
               "héllo", "2026-03-01 10:11:12.345", "2026-03-01 10:11:12", "2026-03-01",
               "bytes", {"a": 1}, null]
  - { name: read, sql: { connection: db, query: "SELECT * FROM t" } }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("write", json!({"rows_affected": 1}))
        .assert_data(
            "read",
            json!({"row_count": 1, "rows": [{
                "flag": true, "small": -3, "n": 42, "big": 18_446_744_073_709_551_615_u64,
                "num": "12345678901234567890.0123456789", "f": 2.25, "name": "héllo",
                "at": "2026-03-01T10:11:12.345", "stamp": "2026-03-01T10:11:12Z",
                "day": "2026-03-01", "raw": "Ynl0ZXM=",
                // MariaDB's JSON is LONGTEXT with a check: it comes back as text.
                "doc": "{\"a\":1}", "nothing": null
            }]}),
        );
    db.drop_all().await;
}

#[tokio::test]
async fn a_value_that_looks_like_sql_stays_a_value() {
    let Some(db) = Scratch::new(Server::MySql).await else {
        return;
    };
    db.exec("CREATE TABLE people (name varchar(100))").await;
    let evil = "x'); DROP TABLE people; --";
    let report = db
        .harness()
        .param("name", json!(evil))
        .flow(
            r#"
params: { name: { type: string } }
steps:
  - { name: add, sql: { connection: db, query: "INSERT INTO people VALUES (?)", params: ["{{ params.name }}"] } }
  - { name: read, sql: { connection: db, query: "SELECT name FROM people WHERE name = ?", params: ["{{ params.name }}"] } }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("read", json!({"rows": [{"name": evil}], "row_count": 1}));
    assert_eq!(db.count("SELECT count(*) FROM people").await, 1);
    db.drop_all().await;
}

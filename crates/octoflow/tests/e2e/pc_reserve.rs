//! The pc-reserve example (`examples/pc-reserve`, SCENARIOS §4) under `octoflow serve`,
//! against the machine's MariaDB (the reservations), PostgreSQL (the patrons), NATS
//! JetStream (the stream) and kinesalite (the second sink).
//!
//! 10,000 reservations, three to a timestamp so that rows sharing a time straddle batch
//! edges, go out exactly once; no plain patron id or barcode is found anywhere; the cursor
//! ends on the last row; an idle run sends nothing; a node killed mid-batch and restarted
//! still delivers every row, a re-sent one only under its first message id, which the
//! stream drops.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use base64::Engine as _;
use octoflow_testkit::cli::Octo;
use octoflow_testkit::services;
use octoflow_testkit::tools::Tool;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor, SqlSafeStr};

use crate::octo;
use crate::server::Server;

/// The bcrypt salt of the test (cost 4: the example's digests, quickly).
const SALT: &str = "$2b$04$pcReservePollerTestSae";
/// The MariaDB password of the test's reader.
const EW_PASSWORD: &str = "ew-reader-pw-7c1d";
const ROWS: u64 = 10_000;

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/pc-reserve")
        .join(rel)
}

/// What one reservation row is made of; patron `p` is found (p < 500), a guest pass
/// (500 ≤ p < 600) or unknown (p ≥ 600).
fn barcode(p: u64) -> String {
    match p {
        0..500 => format!("2100000{p:04}"),
        500..600 => format!("25555{p:06}"),
        _ => format!("2999999{p:04}"),
    }
}

fn patron_id(p: u64) -> u64 {
    7_300_000 + p
}

/// Row `i` (1-based): its key (not in time order) and its time, three rows per second.
fn row(i: u64) -> (u64, String, u64) {
    let key = (i * 7919) % 100_003;
    let second = i / 3;
    let time = format!(
        "2026-01-0{} {:02}:{:02}:{:02}",
        1 + second / 86_400,
        (second / 3600) % 24,
        (second / 60) % 60,
        second % 60
    );
    (key, time, i % 700)
}

/// The scratch databases, stream and kinesalite of one test.
struct World {
    id: String,
    mysql_admin: String,
    postgres_admin: String,
    nats_url: String,
    kinesalite: Tool,
}

impl World {
    async fn new() -> Option<Self> {
        let id: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(12)
            .collect();
        let mysql_admin = services::url(
            "OCTOFLOW_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        );
        let postgres_admin = services::url(
            "OCTOFLOW_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        );
        let nats_url = services::url("OCTOFLOW_TEST_NATS_URL", "nats://127.0.0.1:4222");
        if let Err(e) = sqlx::MySqlConnection::connect(&mysql_admin).await {
            return services::unreachable("MariaDB", "OCTOFLOW_TEST_MYSQL_URL", &e.to_string());
        }
        if let Err(e) = sqlx::PgConnection::connect(&postgres_admin).await {
            return services::unreachable(
                "PostgreSQL",
                "OCTOFLOW_TEST_POSTGRES_URL",
                &e.to_string(),
            );
        }
        if let Err(e) = async_nats::connect(&nats_url).await {
            return services::unreachable("NATS", "OCTOFLOW_TEST_NATS_URL", &e.to_string());
        }
        let kinesalite = Tool::kinesalite().await?;
        let world = Self {
            id,
            mysql_admin,
            postgres_admin,
            nats_url,
            kinesalite,
        };
        world.setup().await;
        Some(world)
    }

    fn db(&self) -> String {
        format!("pcr_{}", self.id)
    }

    fn stream(&self) -> String {
        format!("PCR_{}", self.id.to_uppercase())
    }

    async fn mysql(&self, statements: &[String]) {
        let mut conn = sqlx::MySqlConnection::connect(&self.mysql_admin)
            .await
            .unwrap();
        for sql in statements {
            let text = AssertSqlSafe(sql.clone()).into_sql_str();
            conn.execute(text)
                .await
                .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
        }
    }

    async fn postgres(&self, statements: &[String]) {
        let mut conn = sqlx::PgConnection::connect(&self.postgres_admin)
            .await
            .unwrap();
        for sql in statements {
            let text = AssertSqlSafe(sql.clone()).into_sql_str();
            conn.execute(text)
                .await
                .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
        }
    }

    async fn setup(&self) {
        let db = self.db();
        let table = std::fs::read_to_string(example("fixtures/envisionware.sql")).unwrap();
        self.mysql(&[
            format!("CREATE DATABASE {db}"),
            format!("CREATE USER '{db}'@'%' IDENTIFIED BY '{EW_PASSWORD}'"),
            format!("CREATE USER '{db}'@'localhost' IDENTIFIED BY '{EW_PASSWORD}'"),
            format!("GRANT SELECT ON {db}.* TO '{db}'@'%'"),
            format!("GRANT SELECT ON {db}.* TO '{db}'@'localhost'"),
            format!("USE {db}; {table}"),
        ])
        .await;
        self.insert_rows(1..=ROWS).await;
        let tables = std::fs::read_to_string(example("fixtures/sierra.sql")).unwrap();
        let patrons: Vec<String> = (0..500)
            .map(|p| format!("({}, '{}')", patron_id(p), barcode(p)))
            .collect();
        let infos: Vec<String> = (0..400)
            .map(|p| format!("({}, '1{p:04}', {})", patron_id(p), p % 10))
            .collect();
        self.postgres(&[
            format!("CREATE SCHEMA {db}"),
            format!("SET search_path = {db}; {tables}"),
            format!("INSERT INTO {db}.patron_view VALUES {}", patrons.join(",")),
            format!("INSERT INTO {db}.patron_info VALUES {}", infos.join(",")),
        ])
        .await;
        let nats = async_nats::connect(&self.nats_url).await.unwrap();
        jetstream::new(nats)
            .create_stream(jetstream::stream::Config {
                name: self.stream(),
                subjects: vec![format!("pcr.{}", self.id)],
                ..Default::default()
            })
            .await
            .unwrap();
        self.kinesis("CreateStream", json!({"StreamName": db, "ShardCount": 2}))
            .await;
    }

    async fn insert_rows(&self, range: std::ops::RangeInclusive<u64>) {
        let db = self.db();
        let rows: Vec<(u64, String, u64)> = range.map(row).collect();
        let statements = rows
            .chunks(1000)
            .map(|chunk| {
                let values: Vec<String> = chunk
                    .iter()
                    .map(|(key, time, p)| {
                        format!(
                            "({key}, '{}', {}, '{time}', 'b{}', {}, 'kiosk')",
                            barcode(*p),
                            p % 120,
                            p % 7,
                            if p % 5 == 0 {
                                "NULL".to_owned()
                            } else {
                                format!("'area {}'", p % 3)
                            }
                        )
                    })
                    .collect();
                format!("INSERT INTO {db}.strad_bci VALUES {}", values.join(","))
            })
            .collect::<Vec<_>>();
        self.mysql(&statements).await;
    }

    /// One call of kinesalite's JSON API.
    async fn kinesis(&self, action: &str, body: Value) -> Value {
        let answer = reqwest::Client::builder()
            .build()
            .unwrap()
            .post(self.kinesalite.endpoint())
            .header("X-Amz-Target", format!("Kinesis_20131202.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, \
                 SignedHeaders=host, Signature=x",
            )
            .header("X-Amz-Date", "20260101T000000Z")
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = answer.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// How many records the Kinesis stream holds, over its shards.
    async fn kinesis_count(&self) -> usize {
        let stream = self.db();
        let shards = self
            .kinesis("ListShards", json!({"StreamName": stream}))
            .await;
        let mut count = 0;
        for shard in shards["Shards"].as_array().unwrap() {
            let iterator = self
                .kinesis(
                    "GetShardIterator",
                    json!({"StreamName": stream, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await;
            let mut next = iterator["ShardIterator"].clone();
            loop {
                let page = self
                    .kinesis("GetRecords", json!({"ShardIterator": next, "Limit": 10000}))
                    .await;
                let records = page["Records"].as_array().unwrap();
                count += records.len();
                if records.is_empty() {
                    break;
                }
                next = page["NextShardIterator"].clone();
            }
        }
        count
    }

    /// Every message of the NATS stream: its payload.
    async fn stream_messages(&self) -> Vec<Vec<u8>> {
        let nats = async_nats::connect(&self.nats_url).await.unwrap();
        let js = jetstream::new(nats);
        let stream = js.get_stream(self.stream()).await.unwrap();
        let last = stream.cached_info().state.last_sequence;
        let mut payloads = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                payloads.push(message.payload.to_vec());
            }
        }
        payloads
    }

    async fn stream_count(&self) -> u64 {
        let nats = async_nats::connect(&self.nats_url).await.unwrap();
        let mut stream = jetstream::new(nats)
            .get_stream(self.stream())
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// A working directory with the example's flow, schema and secrets, and a config
    /// pointing at this world.
    fn node(&self) -> Octo {
        let db = self.db();
        let postgres = format!(
            "postgres://postgres:{{{{ secrets.sierra.value }}}}@{}",
            self.postgres_admin
                .trim_start_matches("postgres://")
                .split_once('@')
                .map_or("127.0.0.1:5432/test", |(_, rest)| rest)
        );
        let sep = if postgres.contains('?') { '&' } else { '?' };
        let config = format!(
            "connections:\n  \
               envisionware: {{ url: \"mysql://{db}:{{{{ secrets.envisionware.value }}}}@127.0.0.1:3306/{db}\" }}\n  \
               sierra: {{ url: \"{postgres}{sep}options=-csearch_path%3D{db}\" }}\n  \
               redshift: {{ url: \"{postgres}{sep}options=-csearch_path%3D{db}\" }}\n\
             sinks:\n  \
               events: {{ kind: nats, url: \"{}\", subject: pcr.{}, stream: {} }}\n  \
               stream: {{ kind: kinesis, stream: {db}, region: us-east-1, endpoint: \"{}\" }}\n\
             autostart: []\n",
            self.nats_url,
            self.id,
            self.stream(),
            self.kinesalite.endpoint()
        );
        let read = |rel: &str| std::fs::read_to_string(example(rel)).unwrap();
        octo()
            .file("data/config.yml", &config)
            .file("data/secrets.yml", &read("data/secrets.yml"))
            .file("data/flows/poll.yml", &read("data/flows/poll.yml"))
            .file(
                "data/schemas/pc_reserve.avsc",
                &read("data/schemas/pc_reserve.avsc"),
            )
            .env("ENVISIONWARE_DB_PASSWORD", EW_PASSWORD)
            .env("SIERRA_DB_PASSWORD", "sierra-pw-unused")
            .env("REDSHIFT_DB_PASSWORD", "redshift-pw-unused")
            .env("BCRYPT_SALT", SALT)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
    }

    async fn teardown(self) {
        let db = self.db();
        self.mysql(&[
            format!("DROP DATABASE {db}"),
            format!("DROP USER '{db}'@'%'"),
            format!("DROP USER '{db}'@'localhost'"),
        ])
        .await;
        self.postgres(&[format!("DROP SCHEMA {db} CASCADE")]).await;
        let nats = async_nats::connect(&self.nats_url).await.unwrap();
        let _ = jetstream::new(nats).delete_stream(self.stream()).await;
    }
}

/// Starts a run of `poll` and waits (bounded) for its end; returns the run.
async fn poll(server: &Server, params: Value) -> Value {
    let (code, run) = server
        .post("/api/v1/flows/poll/runs", &json!({"params": params}))
        .await;
    assert_eq!(code, 201, "{run}");
    finished(server, run["id"].as_str().unwrap()).await
}

async fn finished(server: &Server, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let (_, run) = server.get(&format!("/api/v1/runs/{id}")).await;
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} still going: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cursor the flow's state holds.
async fn cursor(server: &Server) -> Value {
    let (code, state) = server.get("/api/v1/state/poll").await;
    assert_eq!(code, 200, "{state}");
    state["cursor"].clone()
}

/// The cursor of the last of the first `n` rows, in cursor order.
fn last_cursor(n: u64) -> Value {
    let mut rows: Vec<(String, u64)> = (1..=n)
        .map(|i| {
            let (k, t, _) = row(i);
            (t, k)
        })
        .collect();
    rows.sort();
    let (time, key) = rows.last().unwrap().clone();
    json!({"dt": time.replace(' ', "T"), "key": key})
}

/// The times of the rows in cursor order.
fn times_in_order() -> Vec<String> {
    let mut rows: Vec<(String, u64)> = (1..=ROWS)
        .map(|i| {
            let (key, time, _) = row(i);
            (time, key)
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(time, _)| time).collect()
}

#[test]
fn rows_sharing_a_time_straddle_batch_edges() {
    let times = times_in_order();
    let split = (1..20)
        .filter(|b| times[b * 500 - 1] == times[b * 500])
        .count();
    assert!(split >= 5, "only {split} batch edges split a time");
}

#[test]
fn the_example_validates_without_its_databases() {
    // The example's config names databases that do not exist here: nothing is dialled.
    octo()
        .args(["validate", example("data/flows").to_str().unwrap()])
        .run()
        .success()
        .stderr_contains("1 flow ok");
}

/// The reservation keys of Avro payloads (digests), checked against the schema.
fn keys(payloads: &[Vec<u8>]) -> Vec<String> {
    let schema = apache_avro::Schema::parse_str(
        &std::fs::read_to_string(example("data/schemas/pc_reserve.avsc")).unwrap(),
    )
    .unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap();
    payloads
        .iter()
        .map(|bytes| {
            let value = reader.read_value(&mut bytes.as_slice()).unwrap();
            let apache_avro::types::Value::Record(fields) = value else {
                panic!("not a record")
            };
            match &fields[0] {
                (name, apache_avro::types::Value::String(key)) if name == "key" => key.clone(),
                other => panic!("first field is {other:?}"),
            }
        })
        .collect()
}

/// Every plain patron id and barcode the rows hold.
fn plain_values() -> Vec<String> {
    (0..700)
        .flat_map(|p| [barcode(p), patron_id(p).to_string()])
        .collect()
}

#[tokio::test]
async fn every_reservation_reaches_the_stream_once_and_no_patron_is_seen() {
    let Some(world) = World::new().await else {
        return;
    };
    let node = world.node();
    let server = Server::start(&node, &[]);

    // Four batches, then the rest; rows sharing a time straddle the 500-row edges.
    let first = poll(&server, json!({"max_batches": 4})).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(world.stream_count().await, 2000);
    assert_eq!(cursor(&server).await, last_cursor(2000));
    let rest = poll(&server, json!({})).await;
    assert_eq!(rest["status"], "succeeded", "{rest}");
    let payloads = world.stream_messages().await;
    assert_eq!(payloads.len(), 10_000);
    let unique: HashSet<String> = keys(&payloads).into_iter().collect();
    assert_eq!(unique.len(), 10_000, "a reservation was sent twice or lost");
    assert!(
        unique.iter().all(|k| k.len() == 31),
        "keys are digests without their salt"
    );
    assert_eq!(world.kinesis_count().await, 10_000);
    assert_eq!(cursor(&server).await, last_cursor(ROWS));

    // Nothing new: nothing sent, the cursor stays.
    let idle = poll(&server, json!({})).await;
    assert_eq!(idle["status"], "succeeded", "{idle}");
    assert_eq!(world.stream_count().await, 10_000);
    assert_eq!(cursor(&server).await, last_cursor(ROWS));

    // A look from the params' cursor that sends nothing and keeps the saved cursor.
    let look = poll(
        &server,
        json!({"ignore_cache": true, "ignore_sink": true, "max_batches": 1}),
    )
    .await;
    assert_eq!(look["status"], "succeeded", "{look}");
    assert_eq!(world.stream_count().await, 10_000);
    assert_eq!(cursor(&server).await, last_cursor(ROWS));

    // No plain patron id or barcode anywhere: the stream, the runs, their logs, the store.
    let mut seen = payloads
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
        .collect::<Vec<_>>();
    seen.extend(
        payloads
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    );
    for run in [&first, &rest, &idle] {
        let id = run["id"].as_str().unwrap();
        seen.push(
            server
                .get(&format!("/api/v1/runs/{id}"))
                .await
                .1
                .to_string(),
        );
        let logs = server
            .http
            .get(format!("{}/api/v1/runs/{id}/logs", server.url))
            .send()
            .await
            .unwrap();
        seen.push(logs.text().await.unwrap());
    }
    server.kill();
    for file in ["data/octoflow.db", "data/octoflow.db-wal"] {
        if let Ok(bytes) = std::fs::read(node.path(file)) {
            seen.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    // One pass over everything for all of them (a search per value is far slower).
    let everything = seen.join("\n");
    let plain = regex::Regex::new(&plain_values().join("|")).unwrap();
    if let Some(found) = plain.find(&everything) {
        panic!("`{}` was found", found.as_str());
    }
    world.teardown().await;
}

#[tokio::test]
async fn a_node_killed_mid_batch_loses_nothing_and_sends_nothing_twice() {
    let Some(world) = World::new().await else {
        return;
    };
    let node = world.node();
    let server = Server::start(&node, &[]);
    let (code, run) = server
        .post(
            "/api/v1/flows/poll/runs",
            &json!({"params": {"batch_size": 100}}),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    // Kill the node once part of the rows are out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while world.stream_count().await < 1500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run sends nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let sent = world.stream_count().await;
    assert!(sent < ROWS, "the run ended before the kill");

    let server = Server::start(&node, &[]);
    let killed = finished(&server, run["id"].as_str().unwrap()).await;
    // Handed back at start-up: ended with the reason; the next run goes on from the cursor.
    assert_eq!(killed["status"], "failed", "{killed}");
    assert_eq!(killed["error"]["message"], "interrupted", "{killed}");
    let again = poll(&server, json!({"batch_size": 100})).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    let payloads = world.stream_messages().await;
    assert_eq!(
        payloads.len(),
        10_000,
        "the stream holds each reservation once"
    );
    let unique: HashSet<String> = keys(&payloads).into_iter().collect();
    assert_eq!(unique.len(), 10_000);
    assert!(
        world.kinesis_count().await >= 10_000,
        "Kinesis does not drop re-sent records"
    );
    assert_eq!(cursor(&server).await, last_cursor(ROWS));
    drop(server);
    world.teardown().await;
}

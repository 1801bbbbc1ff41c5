//! `encoding: avro`: round trips (an object container file over HTTP, datums in a Redis
//! stream), a record that does not fit failing before anything is sent, and schemas from a
//! URL fetched once per process or failing with the URL named.

use apache_avro::types::Value as Avro;
use apache_avro::{Reader, Schema};
use octoflow_core::store::RunStatus;
use octoflow_testkit::harness::Harness;
use serde_json::{Value, json};

use crate::common::{harness, registry};
use crate::http::{Peer, SECRETS};

fn schema() -> Value {
    json!({
        "type": "record", "name": "Loan", "namespace": "lib",
        "fields": [
            {"name": "patron_id", "type": "long"},
            {"name": "title", "type": ["null", "string"]},
            {"name": "branch", "type": {"type": "enum", "name": "Branch", "symbols": ["MAIN", "EAST"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "score", "type": "double"}
        ]
    })
}

fn loans(n: i64) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "patron_id": 1000 + i,
                    "title": if i % 2 == 0 { json!(format!("book {i}")) } else { Value::Null },
                    "branch": if i % 2 == 0 { "MAIN" } else { "EAST" },
                    "tags": ["a", format!("t{i}")],
                    "score": 0.5,
                })
            })
            .collect(),
    )
}

/// An Avro value back as JSON (unions unwrapped, enums as their symbol).
fn to_json(value: Avro) -> Value {
    Value::try_from(value).unwrap()
}

#[tokio::test]
async fn a_container_file_round_trips() {
    let peer = Peer::start().await;
    let settings = format!("sink: partner, encoding: avro, schema: '{}'", schema());
    let report = harness(peer.sinks("/in"), &settings)
        .secrets(SECRETS)
        .input(loans(4))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 4, "batches": 1}));
    let posts = peer.posts();
    assert_eq!(posts[0].header("content-type"), "avro/binary");
    let reader = Reader::new(&posts[0].body[..]).unwrap();
    let decoded: Vec<Value> = reader.map(|v| to_json(v.unwrap())).collect();
    assert_eq!(Value::Array(decoded), loans(4));
}

#[tokio::test]
async fn datums_round_trip_through_redis() {
    use redis::AsyncCommands;
    let Some(url) =
        crate::common::service("Redis", "OCTOFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379").await
    else {
        return;
    };
    let stream = crate::common::unique("octotest:avro");
    let sinks = json!({"cache": {"kind": "redis", "url": url, "stream": stream}});
    let report = Harness::new(registry(sinks))
        .flow("steps:\n  - name: send\n    publish:\n      sink: cache\n      data_key: __input__\n      encoding: avro\n      schema: schemas/loan.avsc\n")
        .file("schemas/loan.avsc", &schema().to_string())
        .input(loans(3))
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
    let parsed = Schema::parse(&schema()).unwrap();
    let decoded: Vec<Value> = entries
        .ids
        .iter()
        .map(|entry| {
            let bytes: Vec<u8> = entry.get("data").unwrap();
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(&parsed)
                .build()
                .unwrap();
            to_json(reader.read_value(&mut bytes.as_slice()).unwrap())
        })
        .collect();
    assert_eq!(Value::Array(decoded), loans(3));
    let _: () = redis.del(&stream).await.unwrap();
}

#[tokio::test]
async fn a_record_that_does_not_fit_fails_before_anything_is_sent() {
    let peer = Peer::start().await;
    let mut records = loans(5);
    records[3].as_object_mut().unwrap().remove("patron_id");
    let settings = format!("sink: partner, encoding: avro, schema: '{}'", schema());
    let report = harness(peer.sinks("/in"), &settings)
        .secrets(SECRETS)
        .input(records)
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("send").error.as_deref(),
        Some("record 3: field `patron_id`: missing and not nullable")
    );
    assert!(peer.posts().is_empty());
}

#[tokio::test]
async fn a_schema_url_is_fetched_once_per_process() {
    let peer = Peer::start().await;
    peer.serve_schema(&schema());
    let url = format!("{}/schema.avsc", peer.base);
    let yaml = format!(
        "steps:\n  - name: first\n    publish: {{ sink: partner, data_key: __input__, encoding: avro, schema: '{url}' }}\n  - name: second\n    publish: {{ sink: partner, data_key: __input__, encoding: avro, schema: '{url}' }}\n"
    );
    let registry = registry(peer.sinks("/in"));
    for _ in 0..2 {
        Harness::new(registry.clone())
            .flow(&yaml)
            .secrets(SECRETS)
            .input(loans(2))
            .run()
            .await
            .assert_status(RunStatus::Succeeded)
            .assert_data("second", json!({"published": 2, "batches": 1}));
    }
    assert_eq!(peer.schema_fetches(), 1);
    assert_eq!(peer.posts().len(), 4);
}

#[tokio::test]
async fn a_schema_url_that_fails_is_named() {
    let peer = Peer::start().await;
    let url = format!("{}/schema.avsc", peer.base);
    let yaml = crate::common::flow(&format!("sink: partner, encoding: avro, schema: '{url}'"));
    let registry = registry(peer.sinks("/in"));
    let run = || {
        Harness::new(registry.clone())
            .flow(&yaml)
            .secrets(SECRETS)
            .input(loans(1))
            .run()
    };
    let report = run().await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("send").error.as_deref(),
        Some(format!("cannot fetch the Avro schema `{url}`: status 404").as_str())
    );
    // A failure is not kept: the same kind fetches the schema again once it is there.
    peer.serve_schema(&schema());
    run().await.assert_status(RunStatus::Succeeded);
    assert_eq!(peer.schema_fetches(), 2);
}

//! Redis streams (`OCTOFLOW_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`): one
//! pipeline of `XADD … MAXLEN ~ n` per batch, entries `id`, `key`, `data`.

use octoflow_core::store::RunStatus;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::common::{harness, records, service, unique};

const VAR: &str = "OCTOFLOW_TEST_REDIS_URL";

async fn connect() -> Option<(String, redis::aio::MultiplexedConnection)> {
    let url = service("Redis", VAR, "redis://127.0.0.1:6379").await?;
    let client = redis::Client::open(url.as_str()).unwrap();
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    Some((url, connection))
}

#[tokio::test]
async fn entries_carry_id_key_and_data_and_maxlen_trims() {
    let Some((url, mut redis)) = connect().await else {
        return;
    };
    let stream = unique("octotest:publish");
    let sinks = json!({"cache": {"kind": "redis", "url": url, "stream": stream, "maxlen": 10}});
    let report = harness(
        sinks,
        "sink: cache, batch_size: 100, key: \"'patron-' ~ record.id\"",
    )
    .input(records(250))
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 250, "batches": 3}));
    // `MAXLEN ~ 10` trims whole nodes of (by default) 100 entries: the stream keeps at
    // least 10 entries and far fewer than 250.
    let len: usize = redis.xlen(&stream).await.unwrap();
    assert!((10..=110).contains(&len), "stream length {len}");
    let last: redis::streams::StreamRangeReply =
        redis.xrevrange_count(&stream, "+", "-", 1).await.unwrap();
    let entry = &last.ids[0];
    let text = |field: &str| -> String { entry.get(field).unwrap() };
    assert_eq!(text("id"), format!("{}:send:1:249", report.run.id));
    assert_eq!(text("key"), "patron-249");
    let data: Value = serde_json::from_str(&text("data")).unwrap();
    assert_eq!(data, records(250)[249]);
    let _: () = redis.del(&stream).await.unwrap();
}

#[tokio::test]
async fn a_key_of_another_type_fails_the_step_without_retry() {
    let Some((url, mut redis)) = connect().await else {
        return;
    };
    let key = unique("octotest:plain");
    let _: () = redis.set(&key, "not a stream").await.unwrap();
    let sinks = json!({"cache": {"kind": "redis", "url": url, "stream": key}});
    let report = harness(sinks, "sink: cache").input(records(2)).run().await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("send").error.clone().unwrap();
    assert!(
        error.starts_with("sink `cache` refused the batch: ") && error.contains("WRONGTYPE"),
        "{error}"
    );
    let _: () = redis.del(&key).await.unwrap();
}

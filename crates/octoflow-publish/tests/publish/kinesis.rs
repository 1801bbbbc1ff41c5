//! Kinesis against kinesalite (`OCTOFLOW_TEST_KINESALITE`: the program, default
//! `kinesalite` on `PATH`; `.ci/run` installs it), started on a free port by each test.
//! kinesalite never refuses part of a `PutRecords` call, so the tests that need refusals put
//! an in-process proxy in front of it that answers chosen records with
//! `ProvisionedThroughputExceededException` (as Kinesis does when a shard is over its
//! limit) and forwards the others.

use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use octoflow_core::store::RunStatus;
use serde_json::{Value, json};

use crate::common::{harness, http_client, records, unique};
use octoflow_testkit::tools::Tool;

/// A kinesalite server with one fresh stream.
struct Kinesalite {
    _tool: Tool,
    endpoint: String,
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl Kinesalite {
    async fn start() -> Option<Self> {
        let tool = Tool::kinesalite().await?;
        let endpoint = tool.endpoint();
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        let client = aws_sdk_kinesis::Client::from_conf(config);
        let stream = unique("octotest");
        client
            .create_stream()
            .stream_name(&stream)
            .shard_count(1)
            .send()
            .await
            .unwrap();
        for _ in 0..100 {
            let summary = client
                .describe_stream_summary()
                .stream_name(&stream)
                .send()
                .await
                .unwrap();
            let status = summary
                .stream_description_summary()
                .unwrap()
                .stream_status();
            if *status == StreamStatus::Active {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Some(Self {
            _tool: tool,
            endpoint,
            client,
            stream,
        })
    }

    /// A sink `stream` on this stream, through `endpoint`.
    fn sinks(&self, endpoint: &str) -> Value {
        json!({"stream": {"kind": "kinesis", "stream": self.stream, "region": "us-east-1", "endpoint": endpoint}})
    }

    /// Every record in the stream: (partition key, data as JSON).
    async fn read(&self) -> Vec<(String, Value)> {
        let shards = self
            .client
            .list_shards()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
        let shard = shards.shards()[0].shard_id().to_owned();
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let mut iterator = iterator.shard_iterator().map(str::to_owned);
        let mut all = Vec::new();
        while let Some(current) = iterator {
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            all.extend(page.records().iter().map(|r| {
                let data = serde_json::from_slice(r.data().as_ref()).unwrap();
                (r.partition_key().to_owned(), data)
            }));
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        all
    }

    async fn delete(self) {
        self.client
            .delete_stream()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
    }
}

/// Which records of `PutRecords` call `call` (from 0) the proxy refuses, by partition key.
type Policy = Arc<dyn Fn(usize, &str) -> bool + Send + Sync>;

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    policy: Policy,
    /// The partition keys of each `PutRecords` call, in order.
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

/// Starts the proxy in front of `upstream`; returns its URL and the calls it sees.
async fn proxy(upstream: &str, policy: Policy) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    let state = ProxyState {
        upstream: upstream.to_owned(),
        client: http_client(),
        policy,
        calls: Arc::default(),
    };
    let calls = state.calls.clone();
    let app = Router::new().route("/", post(forward)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

async fn upstream(state: &ProxyState, headers: &HeaderMap, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let mut request = state.client.post(&state.upstream).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    (status, answer.bytes().await.unwrap().to_vec())
}

async fn forward(State(state): State<ProxyState>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default();
    let json_type = [("content-type", "application/x-amz-json-1.1")];
    if !target.ends_with(".PutRecords") {
        let (status, body) = upstream(&state, &headers, body.to_vec()).await;
        return (status, json_type, body).into_response();
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap();
    let records = request["Records"].as_array().unwrap().clone();
    let keys: Vec<String> = records
        .iter()
        .map(|r| r["PartitionKey"].as_str().unwrap().to_owned())
        .collect();
    let call = {
        let mut calls = state.calls.lock().unwrap();
        calls.push(keys.clone());
        calls.len() - 1
    };
    let refused: Vec<bool> = keys.iter().map(|k| (state.policy)(call, k)).collect();
    let kept: Vec<Value> = records
        .into_iter()
        .zip(&refused)
        .filter(|(_, refused)| !**refused)
        .map(|(r, _)| r)
        .collect();
    let mut accepted = if kept.is_empty() {
        Vec::new()
    } else {
        request["Records"] = Value::Array(kept);
        let (status, body) =
            upstream(&state, &headers, serde_json::to_vec(&request).unwrap()).await;
        if status != StatusCode::OK {
            return (status, json_type, body).into_response();
        }
        let answer: Value = serde_json::from_slice(&body).unwrap();
        answer["Records"].as_array().unwrap().clone()
    }
    .into_iter();
    let merged: Vec<Value> = refused
        .iter()
        .map(|refused| {
            if *refused {
                json!({"ErrorCode": "ProvisionedThroughputExceededException",
                       "ErrorMessage": "Rate exceeded for shard shardId-000000000000"})
            } else {
                accepted.next().unwrap()
            }
        })
        .collect();
    let failed = refused.iter().filter(|r| **r).count();
    let answer = json!({"FailedRecordCount": failed, "Records": merged});
    (StatusCode::OK, json_type, answer.to_string()).into_response()
}

#[tokio::test]
async fn records_are_put_in_batches_with_their_ids_as_partition_keys() {
    let Some(kinesis) = Kinesalite::start().await else {
        return;
    };
    let report = harness(
        kinesis.sinks(&kinesis.endpoint),
        "sink: stream, batch_size: 3",
    )
    .input(records(7))
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 7, "batches": 3}));
    let stored = kinesis.read().await;
    let expected: Vec<(String, Value)> = (0..7)
        .map(|i| {
            (
                format!("{}:send:1:{i}", report.run.id),
                records(7)[i].clone(),
            )
        })
        .collect();
    assert_eq!(stored, expected);
    kinesis.delete().await;
}

#[tokio::test]
async fn only_refused_records_are_sent_again() {
    let Some(kinesis) = Kinesalite::start().await else {
        return;
    };
    // The first call refuses every record with an odd id.
    let odd = |key: &str| key.ends_with(['1', '3', '5']);
    let (url, calls) = proxy(
        &kinesis.endpoint,
        Arc::new(move |call, key| call == 0 && odd(key)),
    )
    .await;
    let settings = "sink: stream, key: \"'patron-' ~ record.id\", retry: {delay: 10ms}";
    let report = harness(kinesis.sinks(&url), settings)
        .input(records(6))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 6, "batches": 1}));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1], ["patron-1", "patron-3", "patron-5"]);
    let log = report.log_text("send");
    assert!(
        log.contains("6 records published to sink `stream` (kinesis)"),
        "{log}"
    );
    assert!(log.contains("3 re-sent"), "{log}");
    let mut stored = kinesis.read().await;
    stored.sort_by_key(|(key, _)| key.clone());
    let expected: Vec<(String, Value)> = (0..6)
        .map(|i| (format!("patron-{i}"), records(6)[i].clone()))
        .collect();
    assert_eq!(stored, expected, "each record once");
    kinesis.delete().await;
}

#[tokio::test]
async fn records_still_refused_fail_the_step_with_counts() {
    let Some(kinesis) = Kinesalite::start().await else {
        return;
    };
    let (url, calls) = proxy(&kinesis.endpoint, Arc::new(|_, key| key == "patron-2")).await;
    let settings =
        "sink: stream, key: \"'patron-' ~ record.id\", retry: {attempts: 2, delay: 10ms}";
    let report = harness(kinesis.sinks(&url), settings)
        .input(records(5))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("send").error.as_deref(),
        Some(
            "sink `stream` refused 1 record after 2 re-sends (last: ProvisionedThroughputExceededException: Rate exceeded for shard shardId-000000000000); 4 of 5 records published, 1 was not"
        )
    );
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert_eq!(kinesis.read().await.len(), 4);
    kinesis.delete().await;
}

#[tokio::test]
async fn batches_stay_under_five_mebibytes_and_a_record_over_one_is_refused() {
    let Some(kinesis) = Kinesalite::start().await else {
        return;
    };
    let big = |n: usize, size: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"id": i, "blob": "x".repeat(size)}))
                .collect(),
        )
    };
    let report = harness(kinesis.sinks(&kinesis.endpoint), "sink: stream")
        .input(big(12, 450 * 1024))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 12, "batches": 2}));
    let report = harness(kinesis.sinks(&kinesis.endpoint), "sink: stream")
        .input(big(2, 1024 * 1024))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("send").error.clone().unwrap();
    assert!(
        error.starts_with("record 0: ")
            && error.ends_with("bytes with its partition key; Kinesis takes at most 1 MiB"),
        "{error}"
    );
    assert_eq!(kinesis.read().await.len(), 12);
    kinesis.delete().await;
}

//! NATS `JetStream` (`OCTOFLOW_TEST_NATS_URL`, default `nats://127.0.0.1:4222`): acks
//! awaited, message ids in `Nats-Msg-Id`, a re-sent id dropped by the stream, a missing
//! stream named in the error.

use async_nats::jetstream::{self, Context, stream};
use octoflow_core::store::RunStatus;
use octoflow_testkit::harness::Harness;
use serde_json::{Value, json};

use crate::common::{records, registry, service, unique};

const VAR: &str = "OCTOFLOW_TEST_NATS_URL";

/// A fresh stream on its own subject, removed by [`Stream::delete`].
struct Stream {
    js: Context,
    name: String,
    subject: String,
    url: String,
}

impl Stream {
    async fn create() -> Option<Self> {
        let url = service("NATS", VAR, "nats://127.0.0.1:4222").await?;
        let js = jetstream::new(async_nats::connect(url.as_str()).await.unwrap());
        let name = unique("OCTOTEST").replace('-', "_");
        let subject = format!("octotest.{name}");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..stream::Config::default()
        })
        .await
        .unwrap();
        Some(Self {
            js,
            name,
            subject,
            url,
        })
    }

    fn sinks(&self) -> Value {
        json!({"events": {"kind": "nats", "url": self.url, "subject": self.subject, "stream": self.name}})
    }

    async fn count(&self) -> u64 {
        let mut stream = self.js.get_stream(&self.name).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// The message id and the payload of message `seq`.
    async fn message(&self, seq: u64) -> (String, Value) {
        let stream = self.js.get_stream(&self.name).await.unwrap();
        let message = stream.get_raw_message(seq).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str()
            .to_owned();
        (id, serde_json::from_slice(&message.payload).unwrap())
    }

    async fn delete(self) {
        self.js.delete_stream(&self.name).await.unwrap();
    }
}

#[tokio::test]
async fn a_resent_message_id_is_kept_once() {
    let Some(stream) = Stream::create().await else {
        return;
    };
    let registry = registry(stream.sinks());
    let yaml =
        crate::common::flow("sink: events, batch_size: 2, message_id: \"'order-' ~ record.id\"");
    for round in 1..=2 {
        let report = Harness::new(registry.clone())
            .flow(&yaml)
            .input(records(5))
            .run()
            .await;
        report
            .assert_status(RunStatus::Succeeded)
            .assert_data("send", json!({"published": 5, "batches": 3}));
        let log = report.log_text("send");
        assert!(
            log.contains("Batch 3/3: 1 record published to sink `events` (nats)"),
            "{log}"
        );
        if round == 2 {
            assert!(log.contains("2 already there"), "{log}");
        }
        assert_eq!(stream.count().await, 5, "round {round}");
    }
    assert_eq!(
        stream.message(1).await,
        ("order-0".to_owned(), records(5)[0].clone())
    );
    stream.delete().await;
}

#[tokio::test]
async fn default_ids_name_run_step_visit_and_index() {
    let Some(stream) = Stream::create().await else {
        return;
    };
    let report = Harness::new(registry(stream.sinks()))
        .flow(&crate::common::flow("sink: events"))
        .input(records(2))
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let (id, payload) = stream.message(2).await;
    assert_eq!(id, format!("{}:send:1:1", report.run.id));
    assert_eq!(payload, records(2)[1]);
    stream.delete().await;
}

#[tokio::test]
async fn a_missing_stream_is_named() {
    let Some(stream) = Stream::create().await else {
        return;
    };
    let sinks = json!({"events": {"kind": "nats", "url": stream.url, "subject": stream.subject, "stream": "NO_SUCH_STREAM"}});
    let report = Harness::new(registry(sinks))
        .flow(&crate::common::flow("sink: events"))
        .input(records(1))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("send").error.clone().unwrap();
    assert!(
        error.starts_with("cannot connect to sink `events` at `nats://")
            && error.contains("cannot use stream `NO_SUCH_STREAM`"),
        "{error}"
    );
    assert_eq!(stream.count().await, 0);
    stream.delete().await;
}

#[tokio::test]
async fn a_second_visit_sends_new_ids() {
    let Some(stream) = Stream::create().await else {
        return;
    };
    let yaml = "steps:
  - name: send
    publish: { sink: events, data_key: __input__ }
  - name: count
    state: { set: { loops: \"{{ (state.loops if state.loops is defined else 0) + 1 }}\" } }
  - name: again
    when: state.loops < 2
    goto: { step_name: send }
";
    let report = Harness::new(registry(stream.sinks()))
        .flow(yaml)
        .input(records(2))
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(stream.count().await, 4);
    let run = report.run.id;
    assert_eq!(stream.message(2).await.0, format!("{run}:send:1:1"));
    assert_eq!(stream.message(4).await.0, format!("{run}:send:2:1"));
    stream.delete().await;
}

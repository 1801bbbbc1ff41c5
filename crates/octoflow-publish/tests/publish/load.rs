//! What fails before or without a service: an unknown sink at load time (with a hint), a
//! sink kind this build lacks, and connect errors that name the sink but never a password.

use octoflow_core::store::RunStatus;
use octoflow_publish::SinkConfig;
use octoflow_testkit::harness::Harness;
use serde_json::json;

use crate::common::{harness, records, registry};

#[test]
fn an_unknown_sink_is_a_load_error_with_a_hint() {
    let sinks = json!({"events": {"kind": "nats", "url": "nats://127.0.0.1:1", "subject": "s", "stream": "S"}});
    let problems = harness(sinks, "sink: evnts").load().unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .ends_with("steps[0].publish.sink: unknown sink `evnts`; did you mean `events`?"),
        "{problems:?}"
    );
}

#[test]
fn a_bad_setting_is_a_load_error() {
    let sinks = json!({"stream": {"kind": "kinesis", "stream": "s", "region": "us-east-1"}});
    let problems = harness(sinks.clone(), "sink: stream, batch_size: 600")
        .load()
        .unwrap_err();
    assert!(
        problems[0].ends_with("`batch_size` must be 1 to 500 for a `kinesis` sink, not 600"),
        "{problems:?}"
    );
    let problems = harness(sinks, "sink: stream, encodng: avro")
        .load()
        .unwrap_err();
    assert!(
        problems[0].contains("unknown field `encodng`") && problems[0].contains("`encoding`"),
        "{problems:?}"
    );
}

#[test]
fn kafka_is_refused_when_the_config_is_read() {
    let err = serde_json::from_value::<SinkConfig>(json!({"kind": "kafka", "brokers": "h:9092"}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sink kind `kafka` is not supported by this build"
    );
}

#[tokio::test]
async fn connect_errors_name_the_sink_and_never_a_password() {
    // Port 1 on loopback: nothing listens there, so every connect is refused at once.
    let sinks = json!({
        "queue": {"kind": "amqp", "url": "amqp://guest:hunter2-literal@127.0.0.1:1/%2f", "routing_key": "q"},
        "cache": {"kind": "redis", "url": "redis://:{{ secrets.r.value }}@127.0.0.1:1/0", "stream": "s"},
        "events": {"kind": "nats", "url": "nats://bot:hunter2-nats@127.0.0.1:1", "subject": "s", "stream": "S"},
    });
    let cases = [
        ("queue", "amqp://127.0.0.1:1/%2f", "hunter2-literal"),
        ("cache", "redis://127.0.0.1:1/0", "hunter2-secret"),
        ("events", "nats://127.0.0.1:1", "hunter2-nats"),
    ];
    for (sink, shown, password) in cases {
        let report = Harness::new(registry(sinks.clone()))
            .flow(&crate::common::flow(&format!("sink: {sink}")))
            .secrets("- { name: r, type: value, value: hunter2-secret }")
            .input(records(1))
            .run()
            .await;
        report.assert_status(RunStatus::Failed);
        let error = report.step("send").error.clone().unwrap();
        assert!(
            error.starts_with(&format!("cannot connect to sink `{sink}` at `{shown}`: ")),
            "{error}"
        );
        assert!(!error.contains(password), "{error}");
        let run = serde_json::to_string(&report.run).unwrap();
        assert!(!run.contains(password), "{run}");
        assert!(!report.log_text("send").contains(password));
    }
}

//! AMQP (`OCTOFLOW_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`):
//! publisher confirms awaited, the message id in the `message_id` property, a record the
//! exchange cannot route refused and re-sent, then the step fails saying how many were sent.

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use octoflow_core::store::RunStatus;
use serde_json::{Value, json};

use crate::common::{harness, records, service, unique};

const VAR: &str = "OCTOFLOW_TEST_AMQP_URL";

async fn connect() -> Option<(String, Connection, Channel)> {
    let url = service("RabbitMQ", VAR, "amqp://guest:guest@127.0.0.1:5672/%2f").await?;
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    Some((url, connection, channel))
}

#[tokio::test]
async fn confirmed_messages_reach_the_queue_with_their_ids() {
    let Some((url, _connection, channel)) = connect().await else {
        return;
    };
    let queue = unique("octotest.publish");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let sinks =
        json!({"queue": {"kind": "amqp", "url": url, "exchange": "", "routing_key": queue}});
    let report = harness(sinks, "sink: queue, batch_size: 3")
        .input(records(7))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 7, "batches": 3}));
    let mut seen = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let properties = &message.delivery.properties;
        let id = properties.message_id().clone().unwrap().to_string();
        let content_type = properties.content_type().clone().unwrap().to_string();
        let data: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        seen.push((id, content_type, data));
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen[6],
        (
            format!("{}:send:1:6", report.run.id),
            "application/json".to_owned(),
            records(7)[6].clone()
        )
    );
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn unroutable_records_are_resent_then_counted() {
    let Some((url, _connection, _channel)) = connect().await else {
        return;
    };
    let nowhere = unique("octotest.nowhere");
    let sinks = json!({"queue": {"kind": "amqp", "url": url, "routing_key": nowhere}});
    let report = harness(sinks, "sink: queue, retry: {attempts: 1, delay: 10ms}")
        .input(records(2))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("send").error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "sink `queue` refused 2 records after 1 re-send (last: exchange `` could not route it with key `{nowhere}` (312 NO_ROUTE)); 0 of 2 records published, 2 were not"
        )),
        "{error}"
    );
    let log = report.log_text("send");
    assert!(log.contains("2 re-sent, 2 refused"), "{log}");
}

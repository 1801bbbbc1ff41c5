//! Tests of the `publish` kind through the real engine, against real services: NATS
//! `JetStream`, Redis and `RabbitMQ` as the machine runs them, kinesalite and moto's server
//! started by the tests that need them, and in-process axum peers for HTTP. A test whose
//! service or tool is missing skips with one line locally and fails under CI
//! (`octoflow_testkit::services`). Each test uses its own stream, key, queue or bucket and
//! removes it at the end.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod amqp;
mod avro;
mod common;
mod http;
mod kinesis;
mod load;
mod nats;
mod redis;
mod s3;

//! `kind: kinesis`: each batch is one `PutRecords` call (at most 500 records and 5 MiB);
//! the records that come back with an `ErrorCode` are the refused ones.

use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use octoflow_core::step::StepError;

use super::shared::Shared;
use super::{Outcome, Outgoing, SinkError, render, send_error};
use crate::batch::Item;
use crate::config::KinesisConfig;

/// The largest record Kinesis takes: data and partition key.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// The longest partition key, in characters.
const MAX_KEY_CHARS: usize = 256;
/// The access key used with an `endpoint` when no credentials are found.
const LOCAL_KEY: &str = "octoflow-local";

/// A Kinesis sink.
pub(super) struct Kinesis {
    config: KinesisConfig,
    client: Shared<aws_sdk_kinesis::Client>,
}

impl Kinesis {
    pub(super) fn new(config: KinesisConfig) -> Self {
        Self {
            config,
            client: Shared::default(),
        }
    }

    /// The client: the standard AWS chain, or with an `endpoint`, the environment, a
    /// profile, else dummy credentials (never instance metadata, which a local emulator's
    /// machine would not have).
    async fn open(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<aws_sdk_kinesis::Client, SinkError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.config.region.clone()));
        if let Some(endpoint) = &self.config.endpoint {
            let endpoint = render(sink, "endpoint", endpoint, secrets)?;
            let chain = CredentialsProviderChain::first_try(
                "Environment",
                EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
            .or_else(
                "Local",
                Credentials::new(LOCAL_KEY, LOCAL_KEY, None, None, "octoflow-local"),
            );
            loader = loader.endpoint_url(endpoint).credentials_provider(chain);
        }
        Ok(aws_sdk_kinesis::Client::new(&loader.load().await))
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let client = self.client.get(|| self.open(sink, out.secrets)).await?;
        let mut entries = Vec::with_capacity(out.items.len());
        for item in out.items {
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(item.payload.clone()))
                .partition_key(item.partition_key())
                .build()
                .map_err(|e| send_error(sink, None, &e.to_string()))?;
            entries.push(entry);
        }
        let request = client.put_records().set_records(Some(entries));
        let stream = self.config.stream.as_str();
        let request = if stream.starts_with("arn:") {
            request.stream_arn(stream)
        } else {
            request.stream_name(stream)
        };
        let answer = request.send().await.map_err(|e| {
            let endpoint = self.config.endpoint.as_deref();
            send_error(sink, endpoint, &DisplayErrorContext(&e).to_string())
        })?;
        let records = answer.records();
        if records.len() != out.items.len() {
            return Err(send_error(
                sink,
                None,
                &format!(
                    "PutRecords answered for {} records, not {}",
                    records.len(),
                    out.items.len()
                ),
            ));
        }
        let refused = records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| {
                record.error_code().map(|code| {
                    let message = record.error_message().unwrap_or_default();
                    (i, format!("{code}: {message}"))
                })
            })
            .collect();
        Ok(Outcome {
            refused,
            duplicates: 0,
        })
    }
}

/// Refuses a record Kinesis could never take, naming it.
pub(super) fn check_items(items: &[Item]) -> Result<(), StepError> {
    for item in items {
        let key = item.partition_key();
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(StepError::fatal(format!(
                "record {}: the partition key is longer than {MAX_KEY_CHARS} characters",
                item.index
            )));
        }
        let bytes = item.payload.len() + key.len();
        if bytes > MAX_RECORD_BYTES {
            return Err(StepError::fatal(format!(
                "record {}: {bytes} bytes with its partition key; Kinesis takes at most 1 MiB",
                item.index
            )));
        }
    }
    Ok(())
}

//! `kind: nats`: each record is a `JetStream` publish to the sink's subject with the message
//! id in `Nats-Msg-Id` (the stream drops an id it saw within its duplicate window) and
//! `Nats-Expected-Stream` naming the sink's stream; every ack is awaited.

use std::sync::Arc;

use async_nats::jetstream::{self, context::Context, message::PublishMessage};
use futures::future::join_all;

use super::shared::{CONNECT_TIMEOUT, Shared};
use super::{Outcome, Outgoing, SinkError, connect_error, connect_failed, render};
use crate::config::NatsConfig;

/// The header that carries a record's `key`.
const KEY_HEADER: &str = "Octoflow-Key";

/// A NATS sink.
pub(super) struct Nats {
    config: NatsConfig,
    /// The `JetStream` context and the rendered URL (for scrubbing errors).
    context: Shared<(Context, Arc<str>)>,
}

impl Nats {
    pub(super) fn new(config: NatsConfig) -> Self {
        Self {
            config,
            context: Shared::default(),
        }
    }

    /// Connects and checks that the stream exists.
    async fn open(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<(Context, Arc<str>), SinkError> {
        let url = render(sink, "url", &self.config.url, secrets)?;
        let client = async_nats::ConnectOptions::new()
            .name("octoflow")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url.as_str())
            .await
            .map_err(|e| connect_error(sink, &url, &e))?;
        let context = jetstream::new(client);
        let stream = &self.config.stream;
        context.get_stream(stream).await.map_err(|e| {
            connect_failed(
                sink,
                &url,
                &format!(
                    "cannot use stream `{stream}`: {}",
                    octoflow_core::error::chain(&e)
                ),
            )
        })?;
        Ok((context, url.into()))
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let (context, url) = self.context.get(|| self.open(sink, out.secrets)).await?;
        let content_type = out.encoder.content_type(None);
        let mut pending = Vec::with_capacity(out.items.len());
        for item in out.items {
            let mut message = PublishMessage::build()
                .payload(item.payload.clone().into())
                .message_id(&item.id)
                .expected_stream(&self.config.stream)
                .header("Content-Type", content_type);
            if let Some(key) = &item.key {
                message = message.header(KEY_HEADER, key.as_str());
            }
            pending.push(
                context
                    .send_publish(self.config.subject.clone(), message)
                    .await,
            );
        }
        let acks = join_all(pending.into_iter().map(|sent| async move {
            match sent {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }))
        .await;
        let mut outcome = Outcome::default();
        for (i, ack) in acks.into_iter().enumerate() {
            match ack {
                Ok(ack) if ack.duplicate => outcome.duplicates += 1,
                Ok(_) => {}
                Err(reason) => outcome.refused.push((i, crate::url::scrub(&reason, &url))),
            }
        }
        Ok(outcome)
    }
}

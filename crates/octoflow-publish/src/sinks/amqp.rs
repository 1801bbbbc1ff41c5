//! `kind: amqp`: each record is a persistent, mandatory `basic.publish` on a channel in
//! confirm mode, with the message id in the `message_id` property; every confirm is
//! awaited. A nack, or a record the exchange could not route, is a refusal.

use std::sync::Arc;

use futures::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::shared::{CONNECT_TIMEOUT, Shared};
use super::{Outcome, Outgoing, SinkError, connect_error, connect_failed, render, send_error};
use crate::config::AmqpConfig;

/// Delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// An open connection with its confirming channel.
#[derive(Clone)]
struct Open {
    /// Kept so the connection lives as long as the channel is used.
    _connection: Arc<Connection>,
    channel: Channel,
    url: Arc<str>,
}

/// An AMQP sink.
pub(super) struct Amqp {
    config: AmqpConfig,
    open: Shared<Open>,
}

impl Amqp {
    pub(super) fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            open: Shared::default(),
        }
    }

    async fn connect(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<Open, SinkError> {
        let url = render(sink, "url", &self.config.url, secrets)?;
        let connect = Connection::connect(&url, ConnectionProperties::default());
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| connect_failed(sink, &url, "timed out"))?
            .map_err(|e| connect_error(sink, &url, &e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| connect_error(sink, &url, &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| connect_error(sink, &url, &e))?;
        Ok(Open {
            _connection: Arc::new(connection),
            channel,
            url: url.into(),
        })
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let open = self.open.get(|| self.connect(sink, out.secrets)).await?;
        let content_type = out.encoder.content_type(None);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let mut confirms = Vec::with_capacity(out.items.len());
        for item in out.items {
            let routing_key = item.key.as_deref().unwrap_or(&self.config.routing_key);
            let properties = BasicProperties::default()
                .with_message_id(item.id.as_str().into())
                .with_content_type(content_type.into())
                .with_delivery_mode(PERSISTENT);
            let published = open
                .channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    routing_key.into(),
                    options,
                    &item.payload,
                    properties,
                )
                .await;
            match published {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    self.open.reset().await;
                    return Err(send_error(sink, Some(&open.url), &e.to_string()));
                }
            }
        }
        let mut outcome = Outcome::default();
        for (i, confirm) in join_all(confirms).await.into_iter().enumerate() {
            match confirm {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(returned))) => outcome.refused.push((
                    i,
                    format!(
                        "exchange `{}` could not route it with key `{}` ({} {})",
                        self.config.exchange,
                        returned.delivery.routing_key,
                        returned.reply_code,
                        returned.reply_text
                    ),
                )),
                Ok(Confirmation::Nack(_)) => {
                    outcome
                        .refused
                        .push((i, "refused by the broker (nack)".to_owned()));
                }
                Err(e) => {
                    self.open.reset().await;
                    return Err(send_error(sink, Some(&open.url), &e.to_string()));
                }
            }
        }
        Ok(outcome)
    }
}

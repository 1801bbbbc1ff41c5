//! `kind: redis`: each batch is one pipeline of
//! `XADD <stream> [MAXLEN ~ n] * id <message id> [key <key>] data <payload>`.

use std::sync::Arc;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::shared::{CONNECT_TIMEOUT, Shared};
use super::{Outcome, Outgoing, SinkError, connect_error, render, send_error};
use crate::config::RedisConfig;

/// How long a pipeline may wait for its answer.
const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A Redis stream sink.
pub(super) struct Redis {
    config: RedisConfig,
    /// The connection and the rendered URL (for scrubbing errors).
    connection: Shared<(MultiplexedConnection, Arc<str>)>,
}

impl Redis {
    pub(super) fn new(config: RedisConfig) -> Self {
        Self {
            config,
            connection: Shared::default(),
        }
    }

    async fn open(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<(MultiplexedConnection, Arc<str>), SinkError> {
        let url = render(sink, "url", &self.config.url, secrets)?;
        let client = redis::Client::open(url.as_str()).map_err(|e| SinkError::Invalid {
            sink: sink.to_owned(),
            setting: "url".to_owned(),
            message: crate::url::scrub(&e.to_string(), &url),
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| connect_error(sink, &url, &e))?;
        Ok((connection, url.into()))
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let (mut connection, url) = self.connection.get(|| self.open(sink, out.secrets)).await?;
        let mut pipe = redis::pipe();
        for item in out.items {
            pipe.cmd("XADD").arg(&self.config.stream);
            if let Some(maxlen) = self.config.maxlen {
                pipe.arg("MAXLEN").arg("~").arg(maxlen);
            }
            pipe.arg("*").arg("id").arg(&item.id);
            if let Some(key) = &item.key {
                pipe.arg("key").arg(key);
            }
            pipe.arg("data").arg(item.payload.as_slice());
        }
        match pipe.query_async::<Vec<redis::Value>>(&mut connection).await {
            Ok(_) => Ok(Outcome::default()),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                self.connection.reset().await;
                Err(send_error(sink, Some(&url), &e.to_string()))
            }
            Err(e) => Err(SinkError::Refused {
                sink: sink.to_owned(),
                reason: crate::url::scrub(&e.to_string(), &url),
            }),
        }
    }
}

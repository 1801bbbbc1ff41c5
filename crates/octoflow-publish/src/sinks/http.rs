//! `kind: http`: each batch is one `POST` of a JSON array (or an Avro object container
//! file, `Content-Type: avro/binary`) through the node's shared HTTP client, with an
//! `Idempotency-Key` naming the batch. A 5xx, 429 or 408 answer, or no answer, refuses the
//! whole batch (sent again); any other status outside 2xx fails the step.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::shared::Shared;
use super::{Outcome, Outgoing, SinkError, render};
use crate::config::HttpSinkConfig;
use crate::encode::Layout;
use crate::http_client::HttpClient;

/// The header naming a batch, the same in every attempt of one step visit.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// How much of a refusing answer goes into the error.
const ERROR_BODY_CHARS: usize = 300;

/// The rendered URL and headers.
#[derive(Clone)]
struct Target {
    url: Arc<str>,
    headers: HeaderMap,
}

/// An HTTP sink.
pub(super) struct Http {
    config: HttpSinkConfig,
    client: HttpClient,
    target: Shared<Target>,
}

impl Http {
    pub(super) fn new(config: HttpSinkConfig, client: HttpClient) -> Self {
        Self {
            config,
            client,
            target: Shared::default(),
        }
    }

    fn target(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<Target, SinkError> {
        let invalid = |setting: String, message: String| SinkError::Invalid {
            sink: sink.to_owned(),
            setting,
            message,
        };
        let url = render(sink, "url", &self.config.url, secrets)?;
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            invalid(
                "url".to_owned(),
                format!("`{}`: {e}", crate::url::shown(&url)),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(
                "url".to_owned(),
                format!(
                    "scheme `{}` is not supported; use http or https",
                    parsed.scheme()
                ),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.config.headers {
            let setting = format!("headers.{name}");
            let value = render(sink, &setting, value, secrets)?;
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(setting.clone(), format!("invalid header name `{name}`")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                invalid(
                    setting,
                    "it holds a line break or a control character".to_owned(),
                )
            })?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        Ok(Target {
            url: url.into(),
            headers,
        })
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let target = self
            .target
            .get(|| async { self.target(sink, out.secrets) })
            .await?;
        let body = out.encoder.document(
            out.items.iter().map(|i| i.payload.as_slice()),
            Layout::Array,
        );
        let batch_id = format!(
            "{}:{}:{}:batch-{}",
            out.run_id, out.step, out.visit, out.number
        );
        let client = self.client.get().map_err(|reason| SinkError::Send {
            sink: sink.to_owned(),
            reason: reason.to_owned(),
        })?;
        let answer = client
            .post(&*target.url)
            .headers(target.headers.clone())
            .header(CONTENT_TYPE, out.encoder.content_type(Some(Layout::Array)))
            .header(IDEMPOTENCY_KEY, batch_id)
            .body(body)
            .send()
            .await;
        let count = out.items.len();
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                let reason =
                    crate::url::scrub(&octoflow_core::error::chain(&e.without_url()), &target.url);
                return Ok(Outcome::all_refused(count, &reason));
            }
        };
        let status = answer.status();
        if status.is_success() {
            return Ok(Outcome::default());
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 429 || code == 408 {
            return Ok(Outcome::all_refused(count, &format!("status {code}")));
        }
        let text = answer.text().await.unwrap_or_default();
        let text: String = text.chars().take(ERROR_BODY_CHARS).collect();
        Err(SinkError::Refused {
            sink: sink.to_owned(),
            reason: format!("status {code}: {}", text.trim()),
        })
    }
}

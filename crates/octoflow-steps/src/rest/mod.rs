//! The `rest` kind: one HTTP request through the node's shared client. Result: the parsed
//! body (JSON, else text, null when empty); with `full_response`, `{status, headers, body}`;
//! with `save_to`, `{status, path, bytes}`. A status outside `expect` fails the step with
//! `status_code: N, response_content: …` in its error. Redirects: see `redirect`.

mod redirect;
mod request;
mod response;
mod settings;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;
use std::time::Instant;

use octoflow_core::error::chain;
use octoflow_core::fs::SafePath;
use octoflow_core::step::prelude::*;
use serde_json::Map;

use self::settings::RestSettings;
use crate::config::HttpConfig;

/// How the `rest` kind's client is built, at its first use.
type BuildClient = Box<dyn FnOnce() -> Result<reqwest::Client, String> + Send>;

/// The `rest` kind, holding the node's shared HTTP client.
#[derive(Debug)]
pub(crate) struct Rest {
    /// The shared client, built by the first `rest` step: building one reads the system's
    /// certificate store (a file per authority), which a node without `rest` steps never
    /// needs. Or why it cannot be built, reported by every `rest` step.
    client: LazyLock<Result<reqwest::Client, String>, BuildClient>,
    /// The largest body kept in memory (see [`HttpConfig::max_body_bytes`]).
    max_body_bytes: u64,
    /// The largest body `save_to` writes (see [`HttpConfig::max_save_bytes`]).
    max_save_bytes: u64,
}

impl Rest {
    /// The kind with its client from `config`, built by the first `rest` step: one that
    /// cannot be built makes every `rest` step fail with the reason.
    pub(crate) fn new(config: &HttpConfig) -> Self {
        let settings = config.clone();
        let build = move || {
            settings
                .builder()
                .redirect(redirect::policy())
                .build()
                .map_err(|err| {
                    let message = format!("cannot build the HTTP client: {}", chain(&err));
                    tracing::error!(error = %message, "The `rest` kind is unavailable.");
                    message
                })
        };
        Self {
            client: LazyLock::new(Box::new(build)),
            max_body_bytes: config.max_body_bytes,
            max_save_bytes: config.max_save_bytes,
        }
    }

    /// Sends the request (following redirects), logs the status (never a header), and turns
    /// the answer into the result.
    async fn exchange(
        &self,
        settings: &RestSettings,
        outgoing: request::Outgoing,
        save_to: Option<&(String, SafePath)>,
        cx: &StepCx<'_>,
    ) -> Result<Value, StepError> {
        let log = cx.log();
        let shown = outgoing.shown.as_str();
        let started = Instant::now();
        let (client, first) = outgoing.request.build_split();
        let first = first.map_err(|e| response::transport_error(shown, e))?;
        let mut sent = first.try_clone();
        let mut answer = client
            .execute(first)
            .await
            .map_err(|e| response::transport_error(shown, e))?;
        let mut hops = 0;
        while let Some(next) = redirect::next(sent.as_ref(), &answer, cx.redactor(), hops)? {
            hops += 1;
            log.note(format!(
                "Redirected to another host, without credentials: `{} {}`.",
                next.method(),
                request::without_query(next.url())
            ))
            .await;
            sent = next.try_clone();
            answer = client
                .execute(next)
                .await
                .map_err(|e| response::transport_error(shown, e))?;
        }
        let status = answer.status().as_u16();
        let millis = started.elapsed().as_millis();
        log.note(format!(
            "Request `{shown}` answered {status} after {millis} ms."
        ))
        .await;
        let answer = response::check_status(settings, shown, answer).await?;
        let mut result = Map::new();
        result.insert("status".to_owned(), json!(status));
        if settings.full_response {
            result.insert(
                "headers".to_owned(),
                response::headers_json(answer.headers()),
            );
        }
        if let Some((path, safe)) = save_to {
            let bytes = response::save(shown, answer, safe, self.max_save_bytes).await?;
            result.insert("path".to_owned(), json!(path));
            result.insert("bytes".to_owned(), json!(bytes));
        } else {
            let body = response::read_body(shown, answer, self.max_body_bytes).await?;
            let body = response::parse_body(&body);
            if !settings.full_response {
                return Ok(body);
            }
            result.insert("body".to_owned(), body);
        }
        Ok(Value::Object(result))
    }
}

impl StepKind for Rest {
    const NAME: &'static str = "rest";
    type Settings = RestSettings;

    fn check(&self, settings: &RestSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        settings.problems(cx)
    }

    async fn run(&self, settings: &RestSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let cx: &StepCx<'_> = cx;
        let client = self.client.as_ref().map_err(StepError::fatal)?;
        let save_to = match &settings.save_to {
            Some(tpl) => {
                let path = cx.render("rest.save_to", tpl)?;
                let safe = cx.files().resolve(&path).map_err(|e| {
                    StepError::fatal(format!("cannot use `save_to`: {}", chain(&e)))
                })?;
                Some((path, safe))
            }
            None => None,
        };
        let timeout = settings
            .timeout
            .as_ref()
            .map(|t| cx.render("rest.timeout", t))
            .transpose()?
            .map(Dur::get);
        let outgoing = request::build(settings, cx, client).await?;
        let exchange = self.exchange(settings, outgoing, save_to.as_ref(), cx);
        let limited = async {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .unwrap_or(Err(StepError::TimedOut(limit))),
                None => exchange.await,
            }
        };
        tokio::select! {
            done = limited => done,
            () = cx.cancel_token().cancelled() => Err(StepError::Cancelled),
        }
    }
}

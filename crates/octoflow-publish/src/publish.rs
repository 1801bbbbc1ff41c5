//! The `publish` kind: one attempt reads the records, encodes and names them all (so a
//! record that cannot be sent fails the step before anything is), then sends them batch by
//! batch, re-sending what the sink refuses. Result: `{published, batches}`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use octoflow_core::step::prelude::*;

use crate::batch::{self, Naming};
use crate::config::SinkConfig;
use crate::deliver::{count_records, deliver};
use crate::encode::Encoder;
use crate::http_client::HttpClient;
use crate::schema::SchemaCache;
use crate::settings::{Encoding, PublishSettings, RecordExpr, unknown_sink};
use crate::sinks::{Outgoing, Sink, SinkError};

/// The `publish` step kind, holding the node's sinks (each connects at its first use and is
/// then shared by every step) and the shared HTTP client (for `http` sinks and schema URLs).
pub struct Publish {
    configs: BTreeMap<String, SinkConfig>,
    sinks: BTreeMap<String, Sink>,
    http: HttpClient,
    schemas: SchemaCache,
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("sinks", &self.configs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Publish {
    /// The kind with the sinks of `config.yml`; nothing connects until a step publishes.
    /// `http` builds the HTTP client, when a step first needs it (building one reads the
    /// system's certificate store).
    pub fn new(
        sinks: BTreeMap<String, SinkConfig>,
        http: impl FnOnce() -> reqwest::Result<reqwest::Client> + Send + 'static,
    ) -> Self {
        let http = HttpClient::new(http);
        let clients = sinks
            .iter()
            .map(|(name, config)| (name.clone(), Sink::new(name.clone(), config.clone(), &http)))
            .collect();
        Self {
            configs: sinks,
            sinks: clients,
            http,
            schemas: SchemaCache::default(),
        }
    }

    /// The records: the list at `data_key`.
    fn records(settings: &PublishSettings, cx: &StepCx<'_>) -> Result<Vec<Value>, StepError> {
        match cx.input_with(settings.data_key.as_deref())? {
            Some(Value::Array(records)) => Ok(records),
            Some(other) => Err(StepError::fatal(format!(
                "`data_key` must point at a list of records, not {}",
                value_kind(&other)
            ))),
            None => Err(StepError::fatal(
                "`publish` needs `data_key`: where in `data` the list of records is",
            )),
        }
    }

    /// How records are encoded: JSON, or Avro with the step's schema.
    async fn encoder(
        &self,
        settings: &PublishSettings,
        cx: &StepCx<'_>,
    ) -> Result<Encoder, StepError> {
        match (settings.encoding, &settings.schema) {
            (Encoding::Json, _) => Ok(Encoder::Json),
            (Encoding::Avro, Some(source)) => Ok(Encoder::Avro(
                self.schemas.load(source, cx, &self.http).await?,
            )),
            (Encoding::Avro, None) => Err(StepError::fatal(
                "`encoding: avro` needs a `schema` (inline, a file or a URL)",
            )),
        }
    }
}

impl StepKind for Publish {
    const NAME: &'static str = "publish";
    type Settings = PublishSettings;

    fn check(&self, settings: &PublishSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        settings.problems(&self.configs, cx)
    }

    async fn run(
        &self,
        settings: &PublishSettings,
        cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        let cx: &StepCx<'_> = cx;
        let sink = self
            .sinks
            .get(&settings.sink)
            .ok_or_else(|| StepError::fatal(unknown_sink(&settings.sink, &self.configs)))?;
        let records = Self::records(settings, cx)?;
        let encoder = self.encoder(settings, cx).await?;
        let payloads = encoder.encode_all(&records)?;
        let run_id = cx.run().id.to_string();
        let names = ["params", "run"]
            .into_iter()
            .filter_map(|name| cx.scope().name(name).map(|v| (name, v.clone())))
            .collect();
        let naming = Naming {
            run_id: run_id.clone(),
            step: cx.step_name(),
            visit: cx.visit(),
            message_id: settings.message_id.as_ref().map(RecordExpr::expr),
            key: settings.key.as_ref().map(RecordExpr::expr),
            names,
        };
        let items = batch::prepare(records, payloads, &naming)?;
        sink.check_items(&items)?;
        let plan = batch::plan(
            &items,
            settings.batch_size(&sink.config),
            sink.config.max_batch_bytes(),
            |item| sink.item_size(item),
        );
        let template = Outgoing {
            items: &[],
            number: 0,
            run_id: &run_id,
            step: cx.step_name(),
            visit: cx.visit(),
            encoder: &encoder,
            secrets: cx.secrets(),
        };
        let mut published = 0;
        for (i, range) in plan.iter().enumerate() {
            if cx.cancel_token().is_cancelled() {
                return Err(StepError::Cancelled);
            }
            let started = Instant::now();
            let sending = deliver(
                sink,
                &items[range.clone()],
                i + 1,
                &template,
                &settings.retry,
            );
            let delivery = tokio::select! {
                delivery = sending => delivery.map_err(|e| failed_after(e, published, items.len()))?,
                () = cx.cancel_token().cancelled() => return Err(StepError::Cancelled),
            };
            published += delivery.accepted;
            let millis = started.elapsed().as_millis();
            cx.log()
                .note(delivery.describe(sink, i + 1, plan.len(), millis))
                .await;
            if delivery.refused > 0 {
                let unsent = items.len() - published;
                return Err(StepError::failed(format!(
                    "sink `{}` refused {} after {} (last: {}); {published} of {} published, {unsent} {} not",
                    sink.name,
                    count_records(delivery.refused),
                    match settings.retry.attempts {
                        1 => "1 re-send".to_owned(),
                        n => format!("{n} re-sends"),
                    },
                    delivery.reason.as_deref().unwrap_or("no reason given"),
                    count_records(items.len()),
                    if unsent == 1 { "was" } else { "were" },
                )));
            }
        }
        Ok(json!({"published": published, "batches": plan.len()}))
    }
}

/// The step's failure for a sink error, saying how many records were published before it.
fn failed_after(err: SinkError, published: usize, total: usize) -> StepError {
    match err.into_step() {
        StepError::Failed { message, retryable } if published > 0 => StepError::Failed {
            message: format!(
                "{message}; {published} of {} published before",
                count_records(total)
            ),
            retryable,
        },
        other => other,
    }
}

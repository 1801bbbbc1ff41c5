//! `kind: s3`: each batch is one object,
//! `<prefix><run id>/<step>-<visit>-<batch>.json` (JSON lines) or `.avro` (an object
//! container file). Another attempt of the same visit writes the same names again.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::shared::Shared;
use super::{Outcome, Outgoing, SinkError, render, send_error};
use crate::config::S3Config;
use crate::encode::Layout;

/// The access key used with an `endpoint` when none is set.
const LOCAL_KEY: &str = "octoflow-local";

/// An S3 sink.
pub(super) struct S3 {
    config: S3Config,
    store: Shared<Arc<AmazonS3>>,
}

impl S3 {
    pub(super) fn new(config: S3Config) -> Self {
        Self {
            config,
            store: Shared::default(),
        }
    }

    /// The object name of a batch.
    fn object(&self, out: &Outgoing<'_>) -> String {
        format!(
            "{}{}/{}-{}-{:06}.{}",
            self.config.prefix,
            out.run_id,
            out.step,
            out.visit,
            out.number,
            out.encoder.extension()
        )
    }

    fn open(
        &self,
        sink: &str,
        secrets: &octoflow_core::secrets::Secrets,
    ) -> Result<Arc<AmazonS3>, SinkError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.config.bucket)
            .with_region(&self.config.region);
        if let Some(endpoint) = &self.config.endpoint {
            let endpoint = render(sink, "endpoint", endpoint, secrets)?;
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false)
                .with_endpoint(endpoint);
            if builder
                .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
                .is_none()
            {
                builder = builder
                    .with_access_key_id(LOCAL_KEY)
                    .with_secret_access_key(LOCAL_KEY);
            }
        }
        builder
            .build()
            .map(Arc::new)
            .map_err(|e| SinkError::Invalid {
                sink: sink.to_owned(),
                setting: "bucket".to_owned(),
                message: octoflow_core::error::chain(&e),
            })
    }

    pub(super) async fn send(&self, sink: &str, out: &Outgoing<'_>) -> Result<Outcome, SinkError> {
        let store = self
            .store
            .get(|| async { self.open(sink, out.secrets) })
            .await?;
        let name = self.object(out);
        let path = Path::parse(&name).map_err(|e| SinkError::Invalid {
            sink: sink.to_owned(),
            setting: "prefix".to_owned(),
            message: format!("cannot name the object `{name}`: {e}"),
        })?;
        let body = out.encoder.document(
            out.items.iter().map(|i| i.payload.as_slice()),
            Layout::Lines,
        );
        store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| {
                let endpoint = self.config.endpoint.as_deref();
                send_error(
                    sink,
                    endpoint,
                    &format!("cannot write `{name}`: {}", octoflow_core::error::chain(&e)),
                )
            })?;
        Ok(Outcome::default())
    }
}

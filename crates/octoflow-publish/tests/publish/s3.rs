//! S3 against moto's server (`OCTOFLOW_TEST_MOTO_SERVER`: the program, default
//! `moto_server` on `PATH`; `.ci/run` installs it), started on a free port by each test:
//! one object per batch, JSON lines or an Avro object container file, read back through
//! `object_store`.

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use octoflow_core::store::RunStatus;
use serde_json::{Value, json};

use crate::common::{harness, http_client, records, unique};
use octoflow_testkit::tools::Tool;

/// A moto server with one fresh bucket.
struct Moto {
    _tool: Tool,
    endpoint: String,
    bucket: String,
    store: AmazonS3,
}

impl Moto {
    async fn start() -> Option<Self> {
        let tool = Tool::start(
            "moto_server",
            "OCTOFLOW_TEST_MOTO_SERVER",
            "moto_server",
            |port| {
                vec![
                    "-H".to_owned(),
                    "127.0.0.1".to_owned(),
                    "-p".to_owned(),
                    port.to_string(),
                ]
            },
        )
        .await?;
        let endpoint = format!("http://127.0.0.1:{}", tool.port);
        let bucket = unique("octotest");
        let created = http_client()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{created:?}");
        let store = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region("us-east-1")
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        Some(Self {
            _tool: tool,
            endpoint,
            bucket,
            store,
        })
    }

    fn sinks(&self) -> Value {
        json!({"bucket": {"kind": "s3", "bucket": self.bucket, "prefix": "pc/", "region": "us-east-1", "endpoint": self.endpoint}})
    }

    /// Every object: its name and its bytes, by name.
    async fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let metas: Vec<_> = self.store.list(None).try_collect().await.unwrap();
        let mut objects = Vec::new();
        for meta in metas {
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            objects.push((meta.location.to_string(), bytes.to_vec()));
        }
        objects.sort();
        objects
    }

    async fn delete(self) {
        for (name, _) in self.objects().await {
            self.store.delete(&Path::from(name)).await.unwrap();
        }
        // The stand-in's development server sometimes resets a connection under load: the
        // clean-up tries again before it gives up.
        let url = format!("{}/{}", self.endpoint, self.bucket);
        let mut tries = 0;
        let deleted = loop {
            tries += 1;
            match http_client().delete(&url).send().await {
                Ok(answer) => break answer,
                Err(error) if tries < 3 && error.is_request() => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(error) => panic!("cannot delete bucket `{url}`: {error}"),
            }
        };
        assert!(deleted.status().is_success(), "{deleted:?}");
    }
}

#[tokio::test]
async fn each_batch_is_one_object_of_json_lines() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let report = harness(moto.sinks(), "sink: bucket, batch_size: 2")
        .input(records(5))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 5, "batches": 3}));
    let objects = moto.objects().await;
    let names: Vec<&str> = objects.iter().map(|(name, _)| name.as_str()).collect();
    let run = report.run.id;
    assert_eq!(
        names,
        [
            format!("pc/{run}/send-1-000001.json"),
            format!("pc/{run}/send-1-000002.json"),
            format!("pc/{run}/send-1-000003.json"),
        ]
    );
    let lines: Vec<Value> = objects
        .iter()
        .flat_map(|(_, bytes)| {
            String::from_utf8(bytes.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|line| serde_json::from_str(&line).unwrap())
        .collect();
    assert_eq!(Value::Array(lines), records(5));
    moto.delete().await;
}

#[tokio::test]
async fn avro_batches_are_object_container_files() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let schema = json!({"type": "record", "name": "Patron", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "n", "type": "long"}
    ]});
    let settings = format!("sink: bucket, encoding: avro, schema: '{schema}'");
    let report = harness(moto.sinks(), &settings)
        .input(records(3))
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let objects = moto.objects().await;
    assert_eq!(objects.len(), 1);
    assert_eq!(
        objects[0].0,
        format!("pc/{}/send-1-000001.avro", report.run.id)
    );
    let reader = apache_avro::Reader::new(&objects[0].1[..]).unwrap();
    let decoded: Vec<Value> = reader
        .map(|v| Value::try_from(v.unwrap()).unwrap())
        .collect();
    assert_eq!(Value::Array(decoded), records(3));
    moto.delete().await;
}

//! What a `rest` step sends: methods, query, headers, bodies, forms and uploads.

use octoflow_core::store::RunStatus;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::peer::*;

#[tokio::test]
async fn get_sends_query_and_headers() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
params:
  word: { type: string, default: "hello world" }
steps:
  - name: call
    rest:
      uri: "BASE/echo?fixed=1"
      query: { q: "{{ params.word }}", list: [a, b], none: null }
      headers: { X-Trace: "t-{{ params.word | length }}", X-Num: 5, X-Absent: null }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(answer["method"], json!("GET"));
    assert_eq!(
        answer["query"],
        json!("fixed=1&list=a&list=b&q=hello+world")
    );
    assert_eq!(answer["x_trace"], json!("t-11"));
    assert_eq!(answer["x_num"], json!("5"));
    let headers = peer.last_headers("/echo");
    assert!(!headers.contains_key("x-absent"), "{headers:?}");
    let agent = concat!("octoflow/", env!("CARGO_PKG_VERSION"));
    assert_eq!(headers["user-agent"], agent);
    assert!(
        report.log_text("call").starts_with(&format!(
            "Request `GET {}/echo` answered 200 after ",
            peer.base
        )),
        "{}",
        report.log_text("call")
    );
}

#[tokio::test]
async fn post_sends_body_and_data_key_wins() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
params:
  n: { type: integer, default: 7 }
steps:
  - name: from_body
    rest:
      uri: BASE/echo
      method: post
      body: { n: "{{ params.n }}", tags: [x, "{{ params.n }}-y"] }
  - name: payload
    set_fact: { value: { from: data } }
  - name: from_data
    data_key: payload
    rest:
      uri: BASE/echo
      method: POST
      body: { ignored: true }
  - name: spooler_form
    type: rest
    rest:
      uri: BASE/echo
      method: Post
      data_key: payload
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let data = &report.run.data;
    assert_eq!(data["from_body"]["method"], json!("POST"));
    assert_eq!(data["from_body"]["content_type"], json!("application/json"));
    assert_eq!(
        data["from_body"]["body"],
        json!({"n": 7, "tags": ["x", "7-y"]})
    );
    assert_eq!(data["from_data"]["body"], json!({"from": "data"}));
    assert_eq!(data["spooler_form"]["body"], json!({"from": "data"}));
}

#[tokio::test]
async fn put_patch_delete_and_head() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - { name: put, rest: { uri: BASE/echo, method: put, body: [1] } }
  - { name: patch, rest: { uri: BASE/echo, method: PATCH, body: { a: 1 } } }
  - { name: delete, rest: { uri: BASE/echo, method: DELETE } }
  - { name: head, rest: { uri: BASE/echo, method: head } }
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let data = &report.run.data;
    assert_eq!(data["put"]["method"], json!("PUT"));
    assert_eq!(data["put"]["body"], json!([1]));
    assert_eq!(data["patch"]["method"], json!("PATCH"));
    assert_eq!(data["patch"]["body"], json!({"a": 1}));
    assert_eq!(data["delete"]["method"], json!("DELETE"));
    assert_eq!(data["delete"]["body"], json!(""));
    assert_eq!(data["head"], Value::Null);
    assert_eq!(peer.methods("/echo"), ["PUT", "PATCH", "DELETE", "HEAD"]);
}

#[tokio::test]
async fn form_without_files_is_urlencoded() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - name: call
    rest:
      uri: BASE/echo
      method: POST
      form: { a: 1, b: x y, skip: null }
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(
        answer["content_type"],
        json!("application/x-www-form-urlencoded")
    );
    assert_eq!(answer["body"], json!("a=1&b=x+y"));
}

#[tokio::test]
async fn multipart_upload_arrives_intact_with_form_fields() {
    let peer = Peer::start().await;
    let harness = harness(
        &peer,
        r#"
steps:
  - name: note
    file: { path: "{{ run.workdir }}/note.txt", mode: write, format: text }
    data_key: __input__
  - name: call
    rest:
      uri: BASE/upload
      method: POST
      form: { project: avo, batch: 3 }
      files:
        blob: uploads/blob.bin
        note: "{{ run.workdir }}/note.txt"
"#,
    )
    .input(json!("a note"));
    let blob: Vec<u8> = big_chunks(3 * 1024 * 1024 + 17)
        .flat_map(|b| b.to_vec())
        .collect();
    std::fs::create_dir_all(harness.data_dir().join("uploads")).unwrap();
    std::fs::write(harness.data_dir().join("uploads/blob.bin"), &blob).unwrap();
    let report = harness.run().await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(answer["fields"], json!({"project": "avo", "batch": "3"}));
    assert_eq!(
        answer["files"]["blob"],
        json!({
            "file_name": "blob.bin",
            "bytes": blob.len(),
            "sha256": hex::encode(Sha256::digest(&blob)),
        })
    );
    assert_eq!(
        answer["files"]["note"],
        json!({
            "file_name": "note.txt",
            "bytes": 6,
            "sha256": hex::encode(Sha256::digest(b"a note")),
        })
    );
    let content_type = &peer.last_headers("/upload")["content-type"];
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
}

#[tokio::test]
async fn upload_paths_are_confined() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
steps:
  - name: call
    rest: { uri: BASE/upload, method: POST, files: { f: "{{ '/etc/passwd' }}" } }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        error(&report, "call"),
        "cannot upload `rest.files.f`: path `/etc/passwd` is outside the data directory and the allowed roots"
    );
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/upload, method: POST, files: { f: nope.bin } } }]",
    )
    .run()
    .await;
    assert!(
        error(&report, "call")
            .starts_with("cannot upload `rest.files.f`: cannot read `nope.bin`: "),
        "{}",
        error(&report, "call")
    );
}

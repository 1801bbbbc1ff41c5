//! Redirects: followed within one origin with everything, to another without credentials,
//! with the method and body the status asks for; at most ten.

use octoflow_core::store::RunStatus;
use serde_json::json;

use super::peer::*;

/// The peer under another name (`localhost` for `127.0.0.1`): another origin, same server.
fn elsewhere(peer: &Peer) -> String {
    peer.base.replace("127.0.0.1", "localhost")
}

#[tokio::test]
async fn a_redirect_to_another_host_leaves_the_credentials_behind() {
    let peer = Peer::start().await;
    let other = elsewhere(&peer);
    let report = harness(
        &peer,
        &format!(
            r#"
steps:
  - name: away
    rest:
      uri: "BASE/redirect?code=307&to={other}/echo"
      method: POST
      body: {{ n: 1 }}
      headers: {{ X-Trace: kept, X-Token: "t {{{{ secrets.api.token }}}}" }}
      authentication: {{ type: api_key, secret: key }}
"#
        ),
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["away"];
    assert_eq!(answer["method"], json!("POST"), "307 keeps the method");
    assert_eq!(answer["body"], json!({"n": 1}), "and the body");
    let headers = peer.last_headers("/echo");
    assert_eq!(headers.get("x-trace").map(String::as_str), Some("kept"));
    for credential in ["x-api-key", "x-token", "authorization"] {
        assert!(
            !headers.contains_key(credential),
            "{credential}: {headers:?}"
        );
    }
    assert!(
        report.log_text("away").contains(&format!(
            "Redirected to another host, without credentials: `POST {other}/echo`"
        )),
        "{}",
        report.log_text("away")
    );
}

#[tokio::test]
async fn a_redirect_within_the_host_keeps_them_and_see_other_becomes_get() {
    let peer = Peer::start().await;
    let other = elsewhere(&peer);
    let report = harness(
        &peer,
        &format!(
            r#"
steps:
  - name: same
    rest:
      uri: "BASE/redirect?code=302&to=/echo"
      authentication: {{ type: token, secret: api }}
  - name: other
    rest:
      uri: "BASE/redirect?code=303&to={other}/echo"
      method: POST
      body: {{ n: 1 }}
"#
        ),
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(peer.methods("/echo"), ["GET", "GET"]);
    assert_eq!(
        report.run.data["other"]["body"],
        json!(""),
        "303: a GET without body"
    );
    let seen = peer.state.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].headers.get("authorization").map(String::as_str),
        Some("Bearer tok-abc123"),
        "same host: the credentials go along"
    );
}

#[tokio::test]
async fn endless_redirects_stop_after_ten() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        "steps:\n  - name: loop\n    rest: { uri: \"BASE/redirect\" }\n",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    assert!(
        error(&report, "loop").contains("more than 10 redirects"),
        "{}",
        error(&report, "loop")
    );
}

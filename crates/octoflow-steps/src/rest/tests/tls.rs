//! A real https peer: Python's `http.server` behind `ssl` (`OCTOFLOW_TEST_PYTHON`, default
//! `python3`), with a certificate for `127.0.0.1` from a test-only CA the step's client is
//! given (`fixtures/`, made once with openssl, valid for 100 years; the CA's key was thrown
//! away). Its redirect to plain http is refused: the step fails saying so, and the http
//! peer sees nothing.

use std::path::Path;

use octoflow_core::step::Registry;
use octoflow_core::store::RunStatus;
use octoflow_testkit::harness::Harness;
use octoflow_testkit::tools::Tool;
use serde_json::json;

use super::peer::{Peer, attempts, error};
use crate::config::HttpConfig;
use crate::rest::{Rest, redirect};

const CA: &[u8] = include_bytes!("fixtures/tls_ca_test_only.pem");

/// An https server on a free port: `/redirect` answers `302` to `location`, anything else
/// `200` with `{"tls": true}`.
const SERVER: &str = r#"
import http.server, ssl, sys
port, cert, key, location = sys.argv[1:5]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", location)
            body = b""
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            body = b'{"tls": true}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// The https peer, redirecting to `location`.
async fn https_peer(location: &str) -> Option<Tool> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rest/tests/fixtures");
    let cert = fixtures
        .join("tls_server_test_only.pem")
        .display()
        .to_string();
    let key = fixtures
        .join("tls_server_test_only.key")
        .display()
        .to_string();
    let location = location.to_owned();
    Tool::start("python3", "OCTOFLOW_TEST_PYTHON", "python3", move |port| {
        vec![
            "-c".to_owned(),
            SERVER.to_owned(),
            port.to_string(),
            cert.clone(),
            key.clone(),
            location.clone(),
        ]
    })
    .await
}

/// A harness whose `rest` kind trusts the test CA (besides the system's).
fn trusting_harness(yaml: &str) -> Harness {
    let config = HttpConfig::default();
    let settings = config.clone();
    let build = move || {
        settings
            .builder()
            .redirect(redirect::policy())
            .add_root_certificate(reqwest::Certificate::from_pem(CA).unwrap())
            .build()
            .map_err(|e| e.to_string())
    };
    let mut registry = Registry::new();
    registry.register(Rest {
        client: std::sync::LazyLock::new(Box::new(build)),
        max_body_bytes: config.max_body_bytes,
        max_save_bytes: config.max_save_bytes,
    });
    Harness::new(registry).flow(yaml)
}

#[tokio::test]
async fn an_https_redirect_to_http_is_refused_and_nothing_is_sent_there() {
    let plain = Peer::start().await;
    let Some(tls) = https_peer(&format!("{}/echo?from=https", plain.base)).await else {
        return;
    };
    let secure = format!("https://127.0.0.1:{}", tls.port);
    let report = trusting_harness(&format!(
        r#"
steps:
  - name: secure
    rest: {{ uri: "{secure}/hello" }}
  - name: down
    rest: {{ uri: "{secure}/redirect", headers: {{ X-Trace: t-1 }} }}
    retry: {{ attempts: 3, delay: 10ms }}
"#
    ))
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    // The peer is trusted: https itself works.
    assert_eq!(report.run.data["secure"], json!({"tls": true}));
    let message = error(&report, "down");
    assert!(
        message.contains(&format!("request `GET {secure}/redirect` failed"))
            && message.contains(&format!(
                "refused a redirect from https to http (`{}/echo`)",
                plain.base
            )),
        "{message}"
    );
    assert_eq!(
        attempts(&report, "down").len(),
        1,
        "a refused redirect is not retried"
    );
    assert_eq!(plain.methods("/echo"), Vec::<String>::new());
}

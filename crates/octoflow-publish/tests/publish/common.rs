//! Shared helpers: the registry with sinks, unique names, service probes, and local tools
//! (kinesalite, moto) started on a free port and stopped when dropped.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use octoflow_core::step::Registry;
use octoflow_publish::{Publish, SinkConfig};
use octoflow_testkit::harness::Harness;
use octoflow_testkit::services::{answers, unreachable, url};
use serde_json::{Value, json};

/// A client like the node's shared one.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The core kinds and `publish` with these sinks (a JSON object of `sinks:` entries).
#[allow(clippy::needless_pass_by_value)] // `json!(…)` at the call site reads best
pub(crate) fn registry(sinks: Value) -> Registry {
    let sinks: BTreeMap<String, SinkConfig> = serde_json::from_value(sinks).unwrap();
    let mut registry = Registry::with_core_kinds();
    registry.register(Publish::new(sinks, http_client()));
    registry
}

/// A one-step flow: `send`, a `publish` block with these settings (YAML flow mapping
/// body), reading the run's input.
pub(crate) fn flow(settings: &str) -> String {
    format!("steps:\n  - name: send\n    publish: {{ data_key: __input__, {settings} }}\n")
}

/// A harness for `flow(settings)` over these sinks.
pub(crate) fn harness(sinks: Value, settings: &str) -> Harness {
    Harness::new(registry(sinks)).flow(&flow(settings))
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<time>-<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    )
}

/// `n` records `{id, name, n}`.
pub(crate) fn records(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"id": i, "name": format!("patron {i}"), "n": i * 10}))
            .collect(),
    )
}

/// `host:port` of a URL.
pub(crate) fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// The URL of a running service from `var` (else `default`), or `None` after the skip line
/// when it does not answer.
pub(crate) async fn service(name: &str, var: &str, default: &str) -> Option<String> {
    let url = url(var, default);
    if answers(&address(&url)).await {
        Some(url)
    } else {
        unreachable(name, var, &format!("nothing answers at {}", address(&url)))
    }
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server program this test started; killed when dropped.
pub(crate) struct Tool {
    _child: tokio::process::Child,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
}

impl Tool {
    /// Starts `program` (from `var`, else `default`) with `args(port)`, and waits until it
    /// answers; `None` after the skip line when it cannot be started.
    pub(crate) async fn start(
        name: &str,
        var: &str,
        default: &str,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Option<Self> {
        let program = url(var, default);
        let port = free_port();
        // tokio's Command: a test tool, killed on drop, never a step's process.
        let child = tokio::process::Command::new(&program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return unreachable(name, var, &format!("cannot start `{program}`: {e}")),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(&format!("127.0.0.1:{port}")).await {
            if let Ok(Some(status)) = child.try_wait() {
                return unreachable(name, var, &format!("`{program}` exited with {status}"));
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer on port {port} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            _child: child,
            port,
        })
    }
}

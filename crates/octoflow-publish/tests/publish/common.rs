//! Shared helpers: the registry with sinks, unique names and service probes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    registry.register(Publish::new(sinks, || Ok(http_client())));
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

//! The routing table of webhooks: every `webhook` trigger of the current flows, matched by
//! method and path (`{name}` segments capture one segment each). It is rebuilt from the
//! [`FlowLibrary`] whenever the library changes ([`FlowLibrary::subscribe`]), so a flow that
//! is added, edited or removed takes its hooks with it at once.

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::Method;
use octoflow_core::flow::{Flow, Trigger, Webhook};
use octoflow_core::library::FlowLibrary;
use tokio::sync::watch;

use super::respond::ResponseTemplates;

/// One hook: its flow, its trigger, its path pattern and methods.
#[derive(Debug)]
pub(super) struct HookRoute {
    /// The flow it starts (its last valid version).
    pub(super) flow: Arc<Flow>,
    /// The trigger.
    pub(super) hook: Webhook,
    /// `<flow> <served path>`: what names the hook for its in-flight slots.
    pub(super) key: String,
    /// Its `response` templates, compiled.
    pub(super) response: Option<ResponseTemplates>,
    segments: Vec<Segment>,
    methods: Vec<Method>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What a request's method and path found.
pub(super) enum Lookup<'t> {
    /// A hook, with the values of its `{name}` segments.
    Found(&'t HookRoute, Vec<(String, String)>),
    /// Hooks at this path, none for this method; the methods they answer.
    WrongMethod(Vec<Method>),
    /// No hook at this path.
    Missing,
}

/// Every hook of the current flows.
#[derive(Debug, Default)]
pub(super) struct Table {
    routes: Vec<HookRoute>,
}

impl Table {
    /// The hooks of the library's flows that have a valid version, in flow-name order. When
    /// two hooks have the same pattern and a method in common, the first keeps it.
    fn build(library: &FlowLibrary) -> Self {
        let mut routes: Vec<HookRoute> = Vec::new();
        for entry in library.entries() {
            let Some(flow) = entry.flow else { continue };
            for trigger in &flow.triggers {
                let Trigger::Webhook(hook) = trigger else {
                    continue;
                };
                let segments = split(&hook.served_path())
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Segment::Param(name.to_owned()),
                            None => Segment::Literal(s.to_owned()),
                        },
                    )
                    .collect();
                let methods = hook
                    .allowed_methods()
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect();
                let route = HookRoute {
                    flow: flow.clone(),
                    hook: (**hook).clone(),
                    key: format!("{} {}", flow.name, hook.served_path()),
                    response: hook.response.as_ref().map(ResponseTemplates::compile),
                    segments,
                    methods,
                };
                if let Some(other) = routes.iter().find(|r| r.clashes(&route)) {
                    tracing::warn!(
                        flow = %flow.name,
                        path = %hook.served_path(),
                        kept = %other.flow.name,
                        "Two webhooks share a path and a method; the first flow keeps it."
                    );
                }
                routes.push(route);
            }
        }
        // More literal segments first: `/jobs/latest` wins over `/jobs/{id}`. Stable, so
        // equal patterns keep flow-name order.
        routes.sort_by_key(|r| {
            r.segments
                .iter()
                .map(|s| matches!(s, Segment::Param(_)))
                .collect::<Vec<_>>()
        });
        Self { routes }
    }

    /// The hook for a method and a path.
    pub(super) fn find(&self, method: &Method, path: &str) -> Lookup<'_> {
        let given: Vec<String> = split(path).map(percent_decode).collect();
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            let Some(values) = route.captures(&given) else {
                continue;
            };
            if route.methods.contains(method) {
                return Lookup::Found(route, values);
            }
            for m in &route.methods {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if allowed.is_empty() {
            Lookup::Missing
        } else {
            Lookup::WrongMethod(allowed)
        }
    }

    /// How many hooks there are.
    pub(super) fn len(&self) -> usize {
        self.routes.len()
    }
}

impl HookRoute {
    fn captures(&self, given: &[String]) -> Option<Vec<(String, String)>> {
        if given.len() != self.segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (segment, value) in self.segments.iter().zip(given) {
            match segment {
                Segment::Literal(text) if text == value => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if value.is_empty() => return None,
                Segment::Param(name) => values.push((name.clone(), value.clone())),
            }
        }
        Some(values)
    }

    fn clashes(&self, other: &Self) -> bool {
        self.segments == other.segments && self.methods.iter().any(|m| other.methods.contains(m))
    }
}

/// The segments of a path, without the leading and trailing `/`.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/')
}

/// Decodes `%XX` escapes of a path segment (invalid ones stay as written).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The table, rebuilt when the library has changed since it was made.
pub(super) struct LiveTable {
    library: Arc<FlowLibrary>,
    changes: watch::Receiver<u64>,
    current: Mutex<(u64, Arc<Table>)>,
}

impl LiveTable {
    pub(super) fn new(library: Arc<FlowLibrary>) -> Self {
        let changes = library.subscribe();
        let version = *changes.borrow();
        let table = Arc::new(Table::build(&library));
        Self {
            library,
            changes,
            current: Mutex::new((version, table)),
        }
    }

    /// The table of the current flows.
    pub(super) fn get(&self) -> Arc<Table> {
        // Read the version first: a change made while building is seen by the next request.
        let version = *self.changes.borrow();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != version {
            let table = Arc::new(Table::build(&self.library));
            tracing::debug!(hooks = table.len(), "Webhook routes rebuilt.");
            *current = (version, table);
        }
        current.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

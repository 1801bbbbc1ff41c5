//! The table of step kinds: types erased once, at registration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

use super::{CheckCx, StepCx, StepError, StepKind};
use crate::flow::Problem;

/// A step's settings, parsed and checked, ready to run.
pub trait PreparedStep: Send + Sync {
    /// The kind's name.
    fn kind(&self) -> &'static str;
    /// Whether an attempt touches nothing outside its run ([`StepKind::SIDE_EFFECT_FREE`]).
    fn side_effect_free(&self) -> bool;
    /// Runs one attempt.
    fn run<'a>(&'a self, cx: &'a mut StepCx<'_>) -> BoxFuture<'a, Result<Value, StepError>>;
}

impl fmt::Debug for dyn PreparedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PreparedStep({})", self.kind())
    }
}

trait ErasedKind: Send + Sync {
    fn prepare(
        &self,
        block: &Value,
        cx: &CheckCx<'_>,
    ) -> Result<Arc<dyn PreparedStep>, Vec<Problem>>;

    fn settings_schema(&self, generator: &mut SchemaGenerator) -> Schema;
}

struct Typed<K>(Arc<K>);

struct Prepared<K: StepKind> {
    kind: Arc<K>,
    settings: K::Settings,
}

impl<K: StepKind> PreparedStep for Prepared<K> {
    fn kind(&self) -> &'static str {
        K::NAME
    }

    fn side_effect_free(&self) -> bool {
        K::SIDE_EFFECT_FREE
    }

    fn run<'a>(&'a self, cx: &'a mut StepCx<'_>) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(self.kind.run(&self.settings, cx))
    }
}

impl<K: StepKind> ErasedKind for Typed<K> {
    fn prepare(
        &self,
        block: &Value,
        cx: &CheckCx<'_>,
    ) -> Result<Arc<dyn PreparedStep>, Vec<Problem>> {
        let settings: K::Settings = serde_path_to_error::deserialize(block).map_err(|err| {
            let path = err.path().to_string();
            let path = if path == "." { String::new() } else { path };
            vec![Problem::at(
                path,
                clean_serde_message(&err.inner().to_string()),
            )]
        })?;
        let problems = self.0.check(&settings, cx);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Arc::new(Prepared {
            kind: self.0.clone(),
            settings,
        }))
    }

    fn settings_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<K::Settings>()
    }
}

/// serde's messages end with "at line N column M" for some formats; ours carry the place
/// separately, and name fields with backticks already.
pub(crate) fn clean_serde_message(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(unknown) = unknown_name(message) {
        return unknown;
    }
    let message = message.replace(", expected one of ", "; expected one of ");
    // Rust type names mean nothing to a flow author.
    [
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected text"),
    ]
    .iter()
    .fold(message, |m, (from, to)| m.replace(from, to))
}

/// "unknown field `pth`, expected one of `path`, `mode`" becomes "unknown field `pth`; did you
/// mean `path`?" when one of the expected names is close (fields and enum values alike), else
/// "…; expected one of …".
fn unknown_name(message: &str) -> Option<String> {
    let (head, expected) = message.split_once(", expected ")?;
    if !(head.starts_with("unknown field `") || head.starts_with("unknown variant `")) {
        return None;
    }
    let given = head.split('`').nth(1)?;
    let names = expected.split('`').skip(1).step_by(2);
    Some(match crate::flow::suggest(given, names) {
        Some(best) => format!("{head}; did you mean `{best}`?"),
        None => format!("{head}; expected {expected}"),
    })
}

/// Every step kind a flow can use, by name.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ErasedKind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with the kinds that need the engine itself: `flow`, `flow_loop`, `switch`,
    /// `goto`, `state` and `wait`.
    pub fn with_core_kinds() -> Self {
        use crate::engine::kinds;
        let mut registry = Self::new();
        registry
            .register(kinds::Flow)
            .register(kinds::FlowLoop)
            .register(kinds::Switch)
            .register(kinds::Goto)
            .register(kinds::State)
            .register(kinds::Wait);
        registry
    }

    /// Adds a kind.
    ///
    /// # Panics
    /// If a kind with the same name is already registered (a wiring bug, found at startup).
    pub fn register<K: StepKind>(&mut self, kind: K) -> &mut Self {
        let old = self.kinds.insert(K::NAME, Arc::new(Typed(Arc::new(kind))));
        assert!(old.is_none(), "step kind `{}` registered twice", K::NAME);
        self
    }

    /// Whether a kind of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.kinds.contains_key(name)
    }

    /// The names of every kind, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Each kind's name with the schema of its settings block (a reference into the
    /// generator's definitions).
    pub fn settings_schemas(&self, generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        self.kinds
            .iter()
            .map(|(name, kind)| (*name, kind.settings_schema(generator)))
            .collect()
    }

    /// Parses and checks a settings block for the kind `name`; `None` for an unknown kind.
    pub fn prepare(
        &self,
        name: &str,
        block: &Value,
        cx: &CheckCx<'_>,
    ) -> Option<Result<Arc<dyn PreparedStep>, Vec<Problem>>> {
        self.kinds.get(name).map(|kind| kind.prepare(block, cx))
    }
}

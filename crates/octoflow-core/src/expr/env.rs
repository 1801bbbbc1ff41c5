//! The shared Jinja environment: strict undefined, bounded CPU, octoflow's filters.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::LazyLock;

use minijinja::{Environment, Expression, UndefinedBehavior};
use serde_json::Value;

use super::filters;
use super::scope::Scope;

/// Upper bound of template instructions per render, so a runaway loop ends with an error.
const FUEL: u64 = 5_000_000;

/// The environment is pure configuration (filters and rules), built once.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    filters::install(&mut env);
    env
});

/// A template or expression that failed to compile or to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// What went wrong, with the place inside the template when known.
    pub message: String,
}

impl ExprError {
    fn from_jinja(err: &minijinja::Error) -> Self {
        Self::from_jinja_in(err, None)
    }

    /// Builds the message; with the template's source, the failing part is quoted.
    fn from_jinja_in(err: &minijinja::Error, source: Option<&str>) -> Self {
        let mut message = match err.detail() {
            Some(detail) if err.kind() == minijinja::ErrorKind::UndefinedError => detail.to_owned(),
            Some(detail) => format!("{}: {detail}", kind_text(err)),
            None => kind_text(err),
        };
        let snippet = err
            .range()
            .and_then(|r| err.template_source().or(source).and_then(|s| s.get(r)))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 80);
        if let Some(snippet) = snippet.filter(|s| !message.contains(&format!("`{s}`"))) {
            let _ = write!(message, " in `{snippet}`");
        }
        if let Some(line) = err.line()
            && line > 1
        {
            let _ = write!(message, " (template line {line})");
        }
        Self { message }
    }
}

fn kind_text(err: &minijinja::Error) -> String {
    match err.kind() {
        minijinja::ErrorKind::UndefinedError => "undefined value".to_owned(),
        minijinja::ErrorKind::SyntaxError => "template syntax error".to_owned(),
        minijinja::ErrorKind::OutOfFuel => "template ran too long (out of fuel)".to_owned(),
        kind => kind.to_string(),
    }
}

/// A compiled Jinja expression (no braces), as in `when:`.
pub struct Expr {
    source: String,
    compiled: Expression<'static, 'static>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Compiles an expression; a syntax error is reported here, at load time.
    pub fn parse(source: &str) -> Result<Self, ExprError> {
        let compiled = ENV
            .compile_expression_owned(source.to_owned())
            .map_err(|e| ExprError::from_jinja(&e))?;
        Ok(Self {
            source: source.to_owned(),
            compiled,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level names it reads: `run.id > 1` reads `run`.
    pub(crate) fn names_read(&self) -> HashSet<String> {
        self.compiled.undeclared_variables(false)
    }

    /// Evaluates to a JSON value.
    pub fn eval(&self, scope: &Scope) -> Result<Value, ExprError> {
        let value = self
            .compiled
            .eval(scope.to_value())
            .map_err(|e| ExprError::from_jinja_in(&e, Some(&self.source)))?;
        to_json(&value, &self.source)
    }

    /// Evaluates and applies Jinja truthiness.
    pub fn is_true(&self, scope: &Scope) -> Result<bool, ExprError> {
        let value = self
            .compiled
            .eval(scope.to_value())
            .map_err(|e| ExprError::from_jinja_in(&e, Some(&self.source)))?;
        if value.is_undefined() {
            return Err(undefined(&self.source));
        }
        Ok(value.is_true())
    }
}

fn undefined(source: &str) -> ExprError {
    ExprError {
        message: format!("`{}` is undefined", source.trim()),
    }
}

fn to_json(value: &minijinja::Value, source: &str) -> Result<Value, ExprError> {
    if value.is_undefined() {
        return Err(undefined(source));
    }
    serde_json::to_value(value).map_err(|e| ExprError {
        message: e.to_string(),
    })
}

/// Checks a template's syntax without rendering it.
pub(crate) fn check_template(source: &str) -> Result<(), ExprError> {
    ENV.template_from_str(source)
        .map(|_| ())
        .map_err(|e| ExprError::from_jinja(&e))
}

/// The top-level names a template string reads: `{{ run.id }}` reads `run`; none for plain
/// text or a template that does not compile.
pub(crate) fn names_read(source: &str) -> HashSet<String> {
    if !is_template(source) {
        return HashSet::new();
    }
    ENV.template_from_str(source)
        .map(|template| template.undeclared_variables(false))
        .unwrap_or_default()
}

/// Renders a template string to text.
pub fn render_str(source: &str, scope: &Scope) -> Result<String, ExprError> {
    ENV.render_str(source, scope.to_value())
        .map_err(|e| ExprError::from_jinja_in(&e, Some(source)))
}

/// The inner expression of a string that is one whole `{{ … }}`, if it is one.
pub(crate) fn whole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner)
}

/// An expression written with braces (`"{{ x > 1 }}"`) is accepted where an expression is
/// expected, as the spooler did; this returns the expression inside.
pub fn strip_braces(source: &str) -> &str {
    whole_expression(source).map_or(source, str::trim)
}

/// Whether a string holds template syntax at all.
pub(crate) fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        Scope::builder()
            .data(json!({"count": 3, "items": ["a", "b"], "name": "world"}))
            .name("params", json!({"env": "qas"}))
            .build()
    }

    #[test]
    fn expressions_fail_on_undefined_names() {
        assert!(Expr::parse("nope").unwrap().is_true(&scope()).is_err());
    }

    #[test]
    fn expressions_see_reserved_names_and_data() {
        let expr = Expr::parse("params.env == 'qas' and count > 2").unwrap();
        assert!(expr.is_true(&scope()).unwrap());
        assert_eq!(
            Expr::parse("data.name").unwrap().eval(&scope()).unwrap(),
            json!("world")
        );
    }

    #[test]
    fn syntax_errors_are_found_at_parse_time() {
        assert!(Expr::parse("a ==").is_err());
        assert!(check_template("{{ a").is_err());
    }

    /// What the `template` fuzz target looks for: no template hangs, recurses without end or
    /// nests deeper than the parser's stack — each ends with an error instead.
    #[test]
    fn runaway_templates_end_with_an_error() {
        let deep = |open: &str, close: &str| {
            format!(
                "{{{{ {}1{} }}}}",
                open.repeat(100_000),
                close.repeat(100_000)
            )
        };
        for (template, expected) in [
            (
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                    .to_owned(),
                "template ran too long (out of fuel)",
            ),
            (
                "{{ 'x' * 2000000000 }}".to_owned(),
                "template ran too long (out of fuel)",
            ),
            (
                "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}".to_owned(),
                "recursion limit exceeded",
            ),
            (
                "{{ range(1000000000) | length }}".to_owned(),
                "range has too many elements",
            ),
            (
                "{{ [1, 2, 3] * 1000000000 }}".to_owned(),
                "repeated sequence is too large",
            ),
            (deep("(", ")"), "exceeds maximum recursion limits"),
            (deep("[", "]"), "exceeds maximum recursion limits"),
            (
                "{% if true %}".repeat(100_000),
                "exceeds maximum recursion limits",
            ),
        ] {
            let err = render_str(&template, &scope()).unwrap_err();
            assert!(err.message.contains(expected), "{template:.60}: {err}");
        }
    }
}

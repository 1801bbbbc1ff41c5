//! The `jinja` kind: renders a template file (from the templates directory) or inline text.
//! Result: the rendered text, or the value parsed from it with `parse`.
//!
//! The template's context is, as in the spooler, the value at `data_key` when one is given:
//! an object's keys become top-level names (and `data` is the object); any other value is
//! `item`. Without `data_key` the template sees the whole run context, as every template does.

mod settings;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

use octoflow_core::error::chain;
use octoflow_core::expr::{Scope, render_str};
use octoflow_core::step::prelude::*;

use self::settings::{JinjaSettings, Parse, check_template_name, template_not_found};

/// The `jinja` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Jinja;

impl StepKind for Jinja {
    const NAME: &'static str = "jinja";
    type Settings = JinjaSettings;
    const SIDE_EFFECT_FREE: bool = true;

    fn check(&self, settings: &JinjaSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        let problems = settings.shape_problems();
        if !problems.is_empty() {
            return problems;
        }
        let mut problems = Vec::new();
        if let Some(name) = settings.path.as_ref().and_then(Tpl::as_literal) {
            if let Err(message) = check_template_name(name) {
                problems.push(Problem::at("path", message));
            } else if let Some(dir) = cx.templates_dir
                && !dir.join(name).is_file()
            {
                problems.push(Problem::at("path", template_not_found(name, dir)));
            }
        }
        problems
    }

    async fn run(&self, settings: &JinjaSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let (source, setting) = match (&settings.path, &settings.template) {
            (Some(path), _) => {
                let name = cx.render("jinja.path", path)?;
                (
                    read_template(&name, cx.templates_dir()).await?,
                    "jinja.path",
                )
            }
            (None, Some(template)) => (template.text().to_owned(), "jinja.template"),
            (None, None) => return Err(StepError::fatal(settings::NEITHER)),
        };
        let scope = match cx.input_with(settings.data_key.as_deref())? {
            Some(value @ Value::Object(_)) => Scope::builder().data(value).build(),
            Some(other) => Scope::builder().name("item", other).build(),
            None => cx.scope().clone(),
        };
        let text = render_str(&source, &scope).map_err(|e| StepError::Render {
            setting: setting.to_owned(),
            source: Box::new(e),
        })?;
        match settings.parse {
            None => Ok(Value::String(text)),
            Some(parse) => parse.apply(&text).map_err(|e| StepError::fatal(chain(&e))),
        }
    }
}

/// Reads a template file by name from the templates directory.
async fn read_template(name: &str, dir: &Path) -> Result<String, StepError> {
    check_template_name(name).map_err(StepError::fatal)?;
    match tokio::fs::read_to_string(dir.join(name)).await {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(StepError::fatal(template_not_found(name, dir)))
        }
        Err(e) => Err(StepError::failed(format!(
            "cannot read template `{name}`: {e}"
        ))),
    }
}

impl Parse {
    /// Parses the rendered text.
    fn apply(self, text: &str) -> Result<Value, ParseError> {
        let parsed = match self {
            Self::Json => serde_json::from_str(text).map_err(|e| Box::new(e) as _),
            Self::Yaml => octoflow_core::yaml::from_str(text).map_err(|e| Box::new(e) as _),
        };
        parsed.map_err(|source| ParseError {
            format: self.as_str(),
            source,
        })
    }
}

/// The rendered text does not parse.
#[derive(Debug, thiserror::Error)]
#[error("cannot parse the rendered text as {format}")]
struct ParseError {
    /// The format's name.
    format: &'static str,
    /// The parser's error.
    #[source]
    source: octoflow_core::error::BoxError,
}

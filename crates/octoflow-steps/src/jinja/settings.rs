//! The `jinja` block: which template, what it sees, and how its output is read.

use std::path::{Component, Path};

use octoflow_core::step::prelude::*;
use serde::Deserializer;

/// The settings of a `jinja` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JinjaSettings {
    /// A template file, relative to the templates directory; a template itself
    /// (`"{{ params.kind }}.j2"`). Give `path` or `template`.
    pub(crate) path: Option<Tpl<String>>,
    /// The template text, inline; its syntax is checked when the flow is loaded.
    pub(crate) template: Option<InlineTemplate>,
    /// The template's whole context (`"."` for all of `data`): an object's keys become
    /// top-level names, any other value is `item`. Default: the whole run context. The
    /// step's own `data_key` works the same.
    pub(crate) data_key: Option<String>,
    /// Parse the rendered text: `json` or `yaml`. Default: the text as-is.
    pub(crate) parse: Option<Parse>,
}

/// How a `jinja` step's output is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Parse {
    /// As JSON.
    Json,
    /// As YAML.
    Yaml,
}

impl Parse {
    /// The word used in the flow file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
        }
    }
}

/// Inline template text whose syntax was checked while the settings were read.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(transparent)]
pub(crate) struct InlineTemplate(String);

impl InlineTemplate {
    /// The template text.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for InlineTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // A `Tpl` checks the syntax of what it holds; the text is rendered later against the
        // step's own context, not through the `Tpl`.
        Tpl::<String>::from_value(Value::String(text.clone())).map_err(serde::de::Error::custom)?;
        Ok(Self(text))
    }
}

/// The message when neither `path` nor `template` is given.
pub(crate) const NEITHER: &str =
    "give `path` (a file in the templates directory) or `template` (inline text)";

impl JinjaSettings {
    /// Problems that need no file system: `path` and `template` are exclusive.
    pub(crate) fn shape_problems(&self) -> Vec<Problem> {
        match (&self.path, &self.template) {
            (Some(_), Some(_)) => vec![Problem::at(
                "template",
                "give `path` or `template`, not both",
            )],
            (None, None) => vec![Problem::at("", NEITHER)],
            _ => Vec::new(),
        }
    }
}

/// A template name must stay inside the templates directory: relative, without `..`.
pub(crate) fn check_template_name(name: &str) -> Result<(), String> {
    let path = Path::new(name);
    if !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(())
    } else {
        Err(format!(
            "template `{name}` must be a relative path inside the templates directory, without `..`"
        ))
    }
}

/// The message for a template file that is not there.
pub(crate) fn template_not_found(name: &str, dir: &Path) -> String {
    format!("template `{name}` not found in `{}`", dir.display())
}

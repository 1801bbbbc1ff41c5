//! The `file` block: what to touch, how, and in which format.

use std::path::Path;

use octoflow_core::step::prelude::*;
use serde::Deserialize;

use super::codec::EncodeError;

/// The settings of a `file` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    /// The file, relative to the data directory (or inside `files.roots`); a template.
    pub(crate) path: Tpl<String>,
    /// What to do: `read` (default), `write`, `append`, `delete`, `move`, `copy` or `exists`.
    #[serde(default)]
    pub(crate) mode: Mode,
    /// How the content is encoded: `json`, `yaml`, `text`, `csv`, `lines`, `binary` or `xml`
    /// (read only). Default: from the extension (`.json`, `.yml`/`.yaml`, `.csv`), else `text`.
    pub(crate) format: Option<Format>,
    /// The spooler's name for `format`; give one of the two.
    #[serde(rename = "type")]
    pub(crate) spooler_type: Option<Format>,
    /// The target of `move` and `copy`, confined like `path`; a template.
    pub(crate) to: Option<Tpl<String>>,
    /// Where in `data` the value to write or append is (`"."` for all of `data`); the step's
    /// own `data_key` works the same. Other modes ignore it.
    pub(crate) data_key: Option<String>,
}

/// What a `file` step does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// Reads and parses the file.
    #[default]
    Read,
    /// Replaces the file atomically (a temporary file, then a rename).
    Write,
    /// Adds to the end of the file, creating it when missing.
    Append,
    /// Removes the file; a missing file is not an error.
    Delete,
    /// Renames the file to `to`.
    Move,
    /// Copies the file to `to`.
    Copy,
    /// Tells whether the file exists.
    Exists,
}

impl Mode {
    /// The word used in the flow file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Append => "append",
            Self::Delete => "delete",
            Self::Move => "move",
            Self::Copy => "copy",
            Self::Exists => "exists",
        }
    }

    /// Whether the mode needs a `to` target.
    pub(crate) fn needs_target(self) -> bool {
        matches!(self, Self::Move | Self::Copy)
    }
}

/// How a file's bytes map to a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Format {
    /// A JSON document (written pretty-printed; appended as one compact line).
    Json,
    /// A YAML document (appended as a new `---` document).
    Yaml,
    /// UTF-8 text: a string as-is, other values as JSON.
    Text,
    /// A list of objects keyed by the header row; cells are strings.
    Csv,
    /// A list of strings, one per line.
    Lines,
    /// Raw bytes, as `{"base64": "…", "bytes": n}`.
    Binary,
    /// An XML document, read into `{"<root>": …}` (attributes `@name`, text `#text`); only
    /// for reading.
    Xml,
}

impl Format {
    /// The format a path's extension implies: `.json`, `.yml`/`.yaml`, `.csv`, else text.
    pub(crate) fn from_extension(path: &str) -> Self {
        let ext = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Self::Json,
            Some("yml" | "yaml") => Self::Yaml,
            Some("csv") => Self::Csv,
            _ => Self::Text,
        }
    }

    /// The word used in the flow file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Text => "text",
            Self::Csv => "csv",
            Self::Lines => "lines",
            Self::Binary => "binary",
            Self::Xml => "xml",
        }
    }

    /// Whether values can be written in this format (`xml` is only read).
    pub(crate) fn is_writable(self) -> bool {
        self != Self::Xml
    }
}

impl FileSettings {
    /// The explicit format, from `format` or its spooler alias `type`.
    pub(crate) fn explicit_format(&self) -> Option<Format> {
        self.format.or(self.spooler_type)
    }

    /// Problems that need no file system: conflicting or missing settings.
    pub(crate) fn shape_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.format.is_some() && self.spooler_type.is_some() {
            problems.push(Problem::at(
                "type",
                "`type` is the spooler's name for `format`; give only one of them",
            ));
        }
        match (&self.to, self.mode.needs_target()) {
            (None, true) => problems.push(Problem::at(
                "mode",
                format!("mode `{}` needs a target; set `to`", self.mode.as_str()),
            )),
            (Some(_), false) => problems.push(Problem::at(
                "to",
                format!(
                    "`to` is only for modes `move` and `copy`, not `{}`",
                    self.mode.as_str()
                ),
            )),
            _ => {}
        }
        if let Some(format) = self.explicit_format()
            && matches!(self.mode, Mode::Write | Mode::Append)
            && !format.is_writable()
        {
            let field = if self.format.is_some() {
                "format"
            } else {
                "type"
            };
            let refused = EncodeError::ReadOnly {
                format: format.as_str(),
            };
            problems.push(Problem::at(field, refused.to_string()));
        }
        problems
    }
}

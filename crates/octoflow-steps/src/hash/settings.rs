//! The `hash` block and its load-time checks. The doc comments here are the settings table of
//! `docs/step-kinds/hash.md`.

use std::fmt;

use octoflow_core::step::prelude::*;
use serde::Deserializer;

/// The settings of a `hash` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HashSettings {
    /// Where the records are in `data`: a list of records (objects) or one record. The
    /// step's own `data_key` works the same.
    pub(crate) data_key: Option<String>,
    /// The fields to hash in each record, as dotted paths (`patron.id`; a number steps into
    /// a list, `cards.0.number`). A field a record lacks is left out; a null stays null.
    pub(crate) fields: Vec<FieldPath>,
    /// `sha256`, `hmac-sha256`, `bcrypt` or `argon2`.
    pub(crate) algorithm: Algorithm,
    /// The name of the secret holding the salt: `name` for the secret's value, or
    /// `name.field` for one field of it. Required by `bcrypt` (a bcrypt salt such as
    /// `$2b$12$` and 22 characters) and `argon2` (at least 8 bytes); optional for `sha256`
    /// (put before the value).
    pub(crate) salt: Option<String>,
    /// The name of the secret holding the HMAC key, written as `salt` is; required by
    /// `hmac-sha256`, and only used by it.
    pub(crate) key: Option<String>,
    /// `bcrypt` only: drop the 29-character salt prefix (`$2b$12$` and the 22 salt
    /// characters) from each digest, keeping the 31-character hash. Default `false`.
    #[serde(default)]
    pub(crate) strip_salt: bool,
}

/// How the values are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub(crate) enum Algorithm {
    /// Hex SHA-256 of the salt (if any) followed by the value.
    #[serde(rename = "sha256")]
    Sha256,
    /// Hex HMAC-SHA-256 of the value with the secret `key`.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// The bcrypt string of the value with the secret salt, as Python's `bcrypt.hashpw`.
    #[serde(rename = "bcrypt")]
    Bcrypt,
    /// Hex argon2id of the value with the secret salt.
    #[serde(rename = "argon2")]
    Argon2,
}

impl Algorithm {
    /// The name a flow writes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::HmacSha256 => "hmac-sha256",
            Self::Bcrypt => "bcrypt",
            Self::Argon2 => "argon2",
        }
    }

    /// Whether each value costs real CPU time (tens to hundreds of milliseconds).
    pub(crate) fn is_slow(self) -> bool {
        matches!(self, Self::Bcrypt | Self::Argon2)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dotted path to a field inside a record: `patron.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    /// As written.
    text: String,
}

impl FieldPath {
    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The path as a JSON pointer (`/patron/id`), which also steps into lists by index.
    pub(crate) fn pointer(&self) -> String {
        let mut pointer = String::with_capacity(self.text.len() + 1);
        for key in self.text.split('.') {
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        pointer
    }
}

impl schemars::JsonSchema for FieldPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FieldPath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Keys joined by dots, such as `patron.id`.",
            "type": "string",
            "pattern": "^[^.]+(\\.[^.]+)*$"
        })
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.split('.').any(str::is_empty) {
            return Err(serde::de::Error::custom(format!(
                "invalid field path `{text}`; write keys joined by dots, such as `patron.id`"
            )));
        }
        Ok(Self { text })
    }
}

impl HashSettings {
    /// Problems a flow can be refused for before it runs.
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let algorithm = self.algorithm;
        if self.fields.is_empty() {
            problems.push(Problem::at(
                "fields",
                "`fields` is empty; name the fields to hash, such as `[patron.id]`",
            ));
        }
        for (i, field) in self.fields.iter().enumerate() {
            if self.fields[..i].contains(field) {
                let message = format!("field `{}` is listed twice", field.as_str());
                problems.push(Problem::at(format!("fields[{i}]"), message));
            }
        }
        for (setting, name) in [("salt", &self.salt), ("key", &self.key)] {
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                let message = format!("`{setting}` is empty; name a secret in secrets.yml");
                problems.push(Problem::at(setting, message));
            }
        }
        match algorithm {
            Algorithm::HmacSha256 => {
                if self.key.is_none() {
                    problems.push(Problem::at(
                        "",
                        "`hmac-sha256` needs `key`, the name of the secret holding the HMAC key",
                    ));
                }
                if self.salt.is_some() {
                    problems.push(Problem::at(
                        "salt",
                        "`hmac-sha256` takes no `salt`; its secret is `key`",
                    ));
                }
            }
            Algorithm::Sha256 | Algorithm::Bcrypt | Algorithm::Argon2 => {
                if self.key.is_some() {
                    let message = format!("`{algorithm}` takes no `key`; use `salt`");
                    problems.push(Problem::at("key", message));
                }
                if self.salt.is_none() && algorithm.is_slow() {
                    let what = if algorithm == Algorithm::Bcrypt {
                        "a bcrypt salt such as `$2b$12$` and 22 characters"
                    } else {
                        "at least 8 bytes"
                    };
                    let message = format!(
                        "`{algorithm}` needs `salt`, the name of the secret holding the salt ({what})"
                    );
                    problems.push(Problem::at("", message));
                }
            }
        }
        if self.strip_salt && algorithm != Algorithm::Bcrypt {
            let message = format!("`strip_salt` is for `bcrypt` only, not `{algorithm}`");
            problems.push(Problem::at("strip_salt", message));
        }
        problems
    }
}

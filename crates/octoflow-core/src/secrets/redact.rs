//! Redaction: every resolved secret value, and the password of any URL, becomes `***`
//! before text leaves the engine (logs, results, data, errors).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::Value;

/// `scheme://user:password@` → `scheme://***@`.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
        .unwrap_or_else(|_| unreachable!())
});

/// What redaction replaces a secret with.
pub const MASK: &str = "***";

/// Replaces known secret values in text and JSON. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// A redactor for these values (empty and very short values are ignored, longest first).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| v.len() >= 3).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self {
            secrets: Arc::new(secrets),
        }
    }

    /// Whether no secret value is known (URL passwords are still masked).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The text with every secret and URL password masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        if out.contains("://")
            && let Cow::Owned(masked) = URL_CREDENTIALS.replace_all(&out, "${1}***@")
        {
            out = Cow::Owned(masked);
        }
        out
    }

    /// Whether some string of the value (keys included) would be masked.
    pub fn needs(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => self.matches(s),
            Value::Array(items) => items.iter().any(|v| self.needs(v)),
            Value::Object(map) => map.iter().any(|(k, v)| self.matches(k) || self.needs(v)),
            _ => false,
        }
    }

    fn matches(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
            || (text.contains("://") && URL_CREDENTIALS.is_match(text))
    }

    /// The value redacted in place: only the strings that hold a secret are rewritten, so
    /// a large value with none is neither copied nor rebuilt.
    pub fn redact(&self, mut value: Value) -> Value {
        self.redact_in_place(&mut value);
        value
    }

    fn redact_in_place(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(masked) = self.text(s) {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_in_place(v)),
            Value::Object(map) => {
                if map.keys().any(|k| self.matches(k)) {
                    let old = std::mem::take(map);
                    *map = old
                        .into_iter()
                        .map(|(k, v)| (self.text(&k).into_owned(), self.redact(v)))
                        .collect();
                } else {
                    map.values_mut().for_each(|v| self.redact_in_place(v));
                }
            }
            _ => {}
        }
    }

    /// The value with every string (keys included) redacted.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k).into_owned(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_secrets_inside_longer_text() {
        let r = Redactor::new(["s3cret".to_owned()]);
        assert_eq!(r.text("password=s3cret;"), "password=***;");
        assert_eq!(
            r.value(&json!({"a": ["xs3cretx"]})),
            json!({"a": ["x***x"]})
        );
    }

    #[test]
    fn redacts_in_place_what_holds_a_secret() {
        let r = Redactor::new(["s3cret".to_owned()]);
        let value = json!({"a": ["xs3cretx", "plain"], "ks3cret": {"u": "https://u:p@h/"}, "n": 1});
        assert!(r.needs(&value));
        assert!(!r.needs(&json!({"a": ["plain", 1, null], "b": "http://h/x"})));
        assert_eq!(r.redact(value.clone()), r.value(&value));
        assert_eq!(
            r.redact(value),
            json!({"a": ["x***x", "plain"], "k***": {"u": "https://***@h/"}, "n": 1})
        );
    }

    #[test]
    fn masks_url_credentials() {
        let r = Redactor::default();
        assert_eq!(
            r.text("postgres://app:pw@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(r.text("http://host/a:b@c"), "http://host/a:b@c");
    }
}

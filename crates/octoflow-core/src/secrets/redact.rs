//! Redaction: every resolved secret value — and each form it takes when passed on (base64,
//! URL-encoded, JSON-escaped, each line of a multi-line one: see `forms`) — and the password
//! of any URL become `***` before text leaves the engine (logs, results, data, state,
//! errors). One automaton finds every form of every secret in a single pass.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use serde_json::Value;

use super::forms::forms;

/// `scheme://user:password@` → `scheme://***@`.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
        .unwrap_or_else(|_| unreachable!())
});

/// What redaction replaces a secret with.
pub const MASK: &str = "***";

/// The shortest secret value: shorter ones are refused when secrets are loaded, and ignored
/// here (they would mask ordinary text everywhere).
pub const MIN_SECRET_LEN: usize = 2;

/// Replaces known secret values in text and JSON. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    finder: Option<Arc<Finder>>,
}

#[derive(Debug)]
struct Finder {
    forms: AhoCorasick,
    longest: usize,
}

impl Redactor {
    /// A redactor for these values and their forms (values shorter than
    /// [`MIN_SECRET_LEN`] are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut needles: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .flat_map(|v| forms(&v))
            .collect();
        needles.sort_unstable();
        needles.dedup();
        let longest = needles.iter().map(String::len).max().unwrap_or(0);
        let finder = (!needles.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&needles)
                    .ok()
            })
            .flatten()
            .map(|forms| Arc::new(Finder { forms, longest }));
        Self { finder }
    }

    /// Whether no secret value is known (URL passwords are still masked).
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// The length in bytes of the longest text masked as a whole (0 without secrets): a
    /// stream cut into pieces must keep this much overlap to mask a secret across a cut.
    pub fn longest(&self) -> usize {
        self.finder.as_ref().map_or(0, |f| f.longest)
    }

    /// The text with every secret and URL password masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Some(finder) = &self.finder
            && finder.forms.is_match(text)
        {
            let mut masked = String::with_capacity(text.len());
            finder
                .forms
                .replace_all_with(text, &mut masked, |_, _, into: &mut String| {
                    into.push_str(MASK);
                    true
                });
            out = Cow::Owned(masked);
        }
        if may_have_url(&out)
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
        self.finder.as_ref().is_some_and(|f| f.forms.is_match(text))
            || (may_have_url(text) && URL_CREDENTIALS.is_match(text))
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

/// Whether `text` may hold a URL (`://`), the test before the URL pattern runs. Most texts
/// redacted hold no colon at all, which one byte search tells at once.
fn may_have_url(text: &str) -> bool {
    text.contains(':') && text.contains("://")
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

    #[test]
    fn masks_a_secret_passed_on_in_another_form() {
        use base64::Engine;
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEA\nq7BFUpkGp3+XQrPhOmW0Bv2FqPOUx1Rz\n-----END PRIVATE KEY-----";
        let r = Redactor::new(["tiger-lily-42".to_owned(), pem.to_owned()]);
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:tiger-lily-42");
        let header = format!("Authorization: Basic {basic}");
        let masked = r.text(&header);
        let inner: String = basic.chars().skip(8).collect();
        assert!(!masked.contains(&inner), "{masked}");
        assert!(masked.contains(MASK), "{masked}");
        assert_eq!(r.text("q=tiger-lily-42&x"), "q=***&x");
        assert_eq!(r.text("{\"k\": \"tiger-lily-42\"}"), "{\"k\": \"***\"}");
        for line in pem.lines().skip(1).take(2) {
            assert_eq!(
                r.text(&format!("> {line}")),
                "> ***",
                "a line of the key alone"
            );
        }
        let escaped = serde_json::to_string(pem).unwrap();
        assert_eq!(r.text(&escaped), "\"***\"");
        assert!(r.longest() >= pem.len());
    }

    #[test]
    fn two_characters_are_a_secret_one_is_not() {
        let r = Redactor::new(["ab".to_owned(), "c".to_owned()]);
        assert_eq!(r.text("ab c"), "*** c");
        assert!(Redactor::new(["c".to_owned()]).is_empty());
    }
}

//! YAML as octoflow reads it: YAML 1.2 (only `true`/`false` are booleans, so `n`, `no`,
//! `on` and `off` stay text), with serde-saphyr's limits against hostile documents.

use serde::de::DeserializeOwned;

/// Parses a YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, serde_saphyr::options! { strict_booleans: true })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    #[test]
    fn only_true_and_false_are_booleans() {
        let v: Value = super::from_str("a: n\nb: yes\nc: on\nd: true").unwrap();
        assert_eq!(v, json!({"a": "n", "b": "yes", "c": "on", "d": true}));
    }
}

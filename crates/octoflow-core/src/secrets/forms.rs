//! The forms a secret takes in text besides itself — base64 (standard and URL-safe, whole,
//! and at each alignment inside a longer encoded text such as a `Basic` header),
//! percent- and form-encoded, JSON-escaped, and each line of a multi-line value such as a
//! PEM key — so that redaction masks it however a flow passed it on.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What percent-encoding leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The same, keeping `/` too (as template `urlencode` does in a path).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The shortest part of an encoding taken from inside a longer text, or line of a
/// multi-line secret, that is masked: shorter ones would match ordinary text.
const MIN_PART: usize = 8;

/// Every form of `secret` to mask, itself first; no duplicates.
pub(super) fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    let mut add = |form: String| {
        if !form.is_empty() && !out.contains(&form) {
            out.push(form);
        }
    };
    if let Ok(quoted) = serde_json::to_string(secret)
        && let Some(inner) = quoted.get(1..quoted.len() - 1)
    {
        add(inner.to_owned());
    }
    let percent = utf8_percent_encode(secret, UNRESERVED).to_string();
    add(percent.replace("%20", "+"));
    add(percent);
    add(utf8_percent_encode(secret, PATH).to_string());
    let bytes = secret.as_bytes();
    for engine in [&STANDARD, &URL_SAFE] {
        add(engine.encode(bytes));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        add(engine.encode(bytes));
        for core in base64_cores(engine, bytes) {
            add(core);
        }
    }
    if secret.contains('\n') {
        for line in secret.lines().map(str::trim) {
            if line.len() >= MIN_PART {
                add(line.to_owned());
            }
        }
    }
    out
}

/// The part of `bytes`' base64 that does not depend on what comes before or after it, for
/// each of the three ways it can sit in a longer encoded text: only whole groups of three
/// bytes of its own (the edges, mixed with neighbours, may show a byte or two).
fn base64_cores(engine: &impl Engine, bytes: &[u8]) -> Vec<String> {
    (0..3)
        .filter_map(|lead| {
            let mut shifted = vec![0_u8; lead];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let first = if lead == 0 { 0 } else { 4 };
            let last = shifted.len() / 3 * 4;
            encoded
                .get(first..last)
                .filter(|core| core.len() >= MIN_PART)
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[String], form: &str) -> bool {
        forms.iter().any(|f| f == form)
    }

    #[test]
    fn encodings_of_a_secret_are_among_its_forms() {
        let forms = forms("p@ss w/rd&\"x\"");
        for form in [
            "p@ss w/rd&\"x\"",
            "p@ss w/rd&\\\"x\\\"",
            "p%40ss%20w%2Frd%26%22x%22",
            "p%40ss+w%2Frd%26%22x%22",
            "p%40ss%20w/rd%26%22x%22",
            &STANDARD.encode("p@ss w/rd&\"x\""),
        ] {
            assert!(has(&forms, form), "{form} in {forms:?}");
        }
    }

    #[test]
    fn a_secret_inside_longer_base64_is_found_at_every_alignment() {
        let secret = "correct-horse-battery";
        let forms = forms(secret);
        for prefix in ["", "a", "ab", "user:", "x:"] {
            let text = STANDARD.encode(format!("{prefix}{secret}!?"));
            assert!(
                forms.iter().skip(1).any(|f| text.contains(f.as_str())),
                "{prefix:?}: {text} holds none of {forms:?}"
            );
        }
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_a_form() {
        let pem = "-----BEGIN KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASC\nAUAwggE8AgEAAkEAq7BFUpkGp3+XQr\n-----END KEY-----\n";
        let found = forms(pem);
        assert!(has(&found, "MIIBVgIBADANBgkqhkiG9w0BAQEFAASC"));
        assert!(has(&found, "-----END KEY-----"));
        let short = forms("ab\ncd");
        assert!(!has(&short, "ab"), "short lines are not masked alone");
    }
}

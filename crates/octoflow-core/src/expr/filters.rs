//! Filters and functions beyond Jinja's own (SPEC §5).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Local, TimeZone, Utc};
use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use sha2::Digest;

/// Adds octoflow's filters and functions to `env`.
pub(super) fn install(env: &mut Environment<'static>) {
    env.add_filter("fromjson", fromjson);
    env.add_filter("toyaml", toyaml);
    env.add_filter("shell_quote", shell_quote);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("sha256", sha256);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("date", date);
    env.add_function("now", now);
    env.add_function("uuid", uuid);
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn fromjson(text: &str) -> Result<Value, Error> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("fromjson: {e}")))?;
    Ok(Value::from(minijinja::value::Serde(&value)))
}

fn toyaml(value: &Value) -> Result<String, Error> {
    serde_saphyr::to_string(value).map_err(|e| invalid(format!("toyaml: {e}")))
}

/// Quotes a value for a POSIX shell: `it's` → `'it'\''s'`.
fn shell_quote(value: &Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return text;
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn b64encode(value: &Value) -> String {
    match value.as_bytes() {
        Some(bytes) => B64.encode(bytes),
        None => B64.encode(value.to_string()),
    }
}

fn b64decode(text: &str) -> Result<String, Error> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| invalid(format!("b64decode: {e}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8"))
}

fn sha256(value: &Value) -> String {
    let digest = match value.as_bytes() {
        Some(bytes) => sha2::Sha256::digest(bytes),
        None => sha2::Sha256::digest(value.to_string()),
    };
    hex::encode(digest)
}

fn basename(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or_default().to_owned()
}

fn dirname(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(i) => trimmed.get(..i).unwrap_or_default().to_owned(),
        None => ".".to_owned(),
    }
}

/// Formats a timestamp (RFC 3339 text, or seconds since the epoch) with a strftime format.
fn date(value: &Value, format: Option<&str>) -> Result<String, Error> {
    let format = format.unwrap_or("%Y-%m-%d %H:%M:%S");
    let when: DateTime<chrono::FixedOffset> = if let Some(text) = value.as_str() {
        DateTime::parse_from_rfc3339(text)
            .map_err(|e| invalid(format!("date: `{text}` is not an RFC 3339 timestamp: {e}")))?
    } else if let Ok(secs) = i64::try_from(value.clone()) {
        Utc.timestamp_opt(secs, 0)
            .single()
            .ok_or_else(|| invalid(format!("date: `{secs}` is out of range")))?
            .fixed_offset()
    } else {
        return Err(invalid(
            "date: expects RFC 3339 text or seconds since the epoch",
        ));
    };
    let mut out = String::new();
    std::fmt::write(&mut out, format_args!("{}", when.format(format)))
        .map_err(|_| invalid(format!("date: invalid format `{format}`")))?;
    Ok(out)
}

fn now() -> String {
    Local::now().to_rfc3339()
}

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::expr::{Scope, render_str};

    #[track_caller]
    fn case(template: &str, expected: &str) {
        let scope = Scope::builder()
            .data(json!({"s": "it's", "p": "/a/b/c.txt", "j": "{\"a\":1}"}))
            .name("env", json!({"HOME": "/root"}))
            .build();
        assert_eq!(
            render_str(template, &scope).unwrap(),
            expected,
            "{template}"
        );
    }

    #[test]
    fn filters() {
        case("{{ s | shell_quote }}", r"'it'\''s'");
        case("{{ 'abc' | b64encode }}", "YWJj");
        case("{{ 'YWJj' | b64decode }}", "abc");
        case(
            "{{ 'abc' | sha256 }}",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        );
        case("{{ p | basename }}", "c.txt");
        case("{{ p | dirname }}", "/a/b");
        case("{{ (j | fromjson).a }}", "1");
        case("{{ {'a': 1} | tojson }}", "{\"a\": 1}");
        case("{{ 'a b' | urlencode }}", "a%20b");
        case("{{ 0 | date('%Y') }}", "1970");
        case("{{ '2026-01-02T03:04:05Z' | date('%d/%m') }}", "02/01");
        case("{{ env('HOME') }}", "/root");
        case("{{ {'a': [1]} | toyaml | trim }}", "a:\n- 1");
    }
}

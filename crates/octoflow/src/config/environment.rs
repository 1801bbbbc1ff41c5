//! `--env NAME`: the environment's config file (`config.qa.yml` beside `config.yml`) merged
//! over the config file, as the poller's and syncrator's per-environment files were.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::file::{ConfigFile, config_message};

/// The config file with the environment's file beside it (`config.qa.yml` for
/// `config.yml`) merged over it: maps key by key, any other value replaced. Each file's
/// YAML errors carry its place; a setting the merge makes invalid names both files.
pub(super) fn read_merged(path: &Path, environment: &str) -> Result<ConfigFile> {
    if environment.is_empty()
        || !environment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("invalid environment `{environment}`; use letters, digits, `-` and `_`");
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("config");
    let extension = path.extension().and_then(|s| s.to_str()).unwrap_or("yml");
    let overlay = path.with_file_name(format!("{stem}.{environment}.{extension}"));
    if !overlay.is_file() {
        bail!(
            "`--env {environment}`: no `{}` beside `{}`",
            overlay.display(),
            path.display()
        );
    }
    // Each file must be valid on its own YAML terms; the merge is checked as a whole.
    let base = read_config_value(path)?;
    let over = read_config_value(&overlay)?;
    let mut merged = base;
    merge_values(&mut merged, over);
    serde_json::from_value::<Option<ConfigFile>>(merged)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            anyhow!(
                "{} merged with {}: {}",
                path.display(),
                overlay.display(),
                config_message(&e.to_string())
            )
        })
}

/// A config file as a YAML tree.
fn read_config_value(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file `{}`", path.display()))?;
    octoflow_core::yaml::from_str::<Option<Value>>(text.as_str())
        .map(|v| v.unwrap_or(Value::Null))
        .map_err(|err| {
            let place = err.location().map_or_else(
                || " ".to_owned(),
                |l| format!("{}:{}: ", l.line(), l.column()),
            );
            anyhow!(
                "{}:{place}{}",
                path.display(),
                config_message(&err.to_string())
            )
        })
}

/// Merges `over` into `base`: maps key by key, any other value replaced.
fn merge_values(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge_values(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_merge_key_by_key_and_other_values_are_replaced() {
        let mut base = json!({"workers": 8, "auth": {"public_read": false, "token_ttl": "15m"},
                              "autostart": ["a.yml", "b.yml"]});
        merge_values(
            &mut base,
            json!({"auth": {"public_read": true}, "autostart": ["c.yml"],
                                       "listen": "0.0.0.0:80"}),
        );
        assert_eq!(
            base,
            json!({"workers": 8, "auth": {"public_read": true, "token_ttl": "15m"},
                   "autostart": ["c.yml"], "listen": "0.0.0.0:80"})
        );
    }

    #[test]
    fn the_environment_file_is_merged_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("config.yml");
        std::fs::write(&base, "workers: 2\nauth: { public_read: true }\n").unwrap();
        std::fs::write(dir.path().join("config.qa.yml"), "workers: 4\n").unwrap();
        let merged = read_merged(&base, "qa").unwrap();
        assert_eq!(merged.workers, Some(4));
        assert!(merged.auth.unwrap().public_read);
        let missing = read_merged(&base, "prd").unwrap_err().to_string();
        assert!(
            missing.contains("no `") && missing.contains("config.prd.yml"),
            "{missing}"
        );
        assert!(read_merged(&base, "../x").is_err());
        std::fs::write(dir.path().join("config.bad.yml"), "wrkers: 4\n").unwrap();
        let bad = read_merged(&base, "bad").unwrap_err().to_string();
        assert!(
            bad.contains("merged with") && bad.contains("wrkers"),
            "{bad}"
        );
    }
}

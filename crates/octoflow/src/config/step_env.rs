//! What steps see of the server's environment (SPEC §12 `steps.env_pass`), and the values
//! of the configuration that must be redacted like secrets.
//!
//! Child processes and templates (`env`, `env()`) get an allow-list only: a few variables
//! every program expects, and the names config lists. Variables of octoflow itself
//! (`OCTOFLOW_*`: the admin token, the database URL, the secrets key) are never passed.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Deserialize;

/// Passed to every step when set.
const ALWAYS: &[&str] = &["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER"];
/// Passed to every step when set, by prefix (the locale's categories).
const ALWAYS_PREFIX: &str = "LC_";
/// Never passed: octoflow's own settings.
const OWN_PREFIX: &str = "OCTOFLOW_";

/// `steps:` of config.yml.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StepsSection {
    /// Names of server environment variables that steps may see, beyond the usual ones.
    pub(crate) env_pass: Vec<String>,
}

/// The environment steps see: the allow-listed variables of `process`.
pub(crate) fn step_env(
    process: &BTreeMap<String, String>,
    section: &StepsSection,
) -> Result<BTreeMap<String, String>> {
    for name in &section.env_pass {
        if name.starts_with(OWN_PREFIX) {
            bail!(
                "steps.env_pass: `{name}` is one of octoflow's own settings; they are never passed to steps"
            );
        }
    }
    Ok(process
        .iter()
        .filter(|(name, _)| {
            ALWAYS.contains(&name.as_str())
                || name.starts_with(ALWAYS_PREFIX)
                || section.env_pass.contains(name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect())
}

/// The password of a URL (`scheme://user:password@host…`), as written and percent-decoded;
/// none when it has none or it is a template (its secret is redacted anyway).
pub(crate) fn url_password(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((credentials, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_, password)) = credentials.split_once(':') else {
        return Vec::new();
    };
    if password.is_empty() || password.contains("{{") {
        return Vec::new();
    }
    let mut found = vec![password.to_owned()];
    let decoded: String = form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if decoded != password && !decoded.is_empty() {
        found.push(decoded);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process() -> BTreeMap<String, String> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/o"),
            ("LC_ALL", "C.UTF-8"),
            ("OCTOFLOW_API_TOKEN", "admin-secret"),
            ("AWS_PROFILE", "prod"),
            ("AWS_SECRET_ACCESS_KEY", "k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn only_the_allow_list_reaches_steps() {
        let section = StepsSection {
            env_pass: vec!["AWS_PROFILE".to_owned()],
        };
        let env = step_env(&process(), &section).unwrap();
        assert_eq!(
            env.keys().map(String::as_str).collect::<Vec<_>>(),
            ["AWS_PROFILE", "HOME", "LC_ALL", "PATH"]
        );
    }

    #[test]
    fn octoflow_settings_cannot_be_passed() {
        let section = StepsSection {
            env_pass: vec!["OCTOFLOW_API_TOKEN".to_owned()],
        };
        let err = step_env(&process(), &section).unwrap_err().to_string();
        assert_eq!(
            err,
            "steps.env_pass: `OCTOFLOW_API_TOKEN` is one of octoflow's own settings; they are never passed to steps"
        );
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("postgres://app:pw@db/x"), ["pw"]);
        assert_eq!(
            url_password("amqp://guest:p%40ss@127.0.0.1:5672/%2f"),
            ["p%40ss", "p@ss"]
        );
        assert!(url_password("mysql://reader:{{ secrets.ew.password }}@h/db").is_empty());
        assert!(url_password("redis://127.0.0.1:6379").is_empty());
        assert!(url_password("sqlite://data/octoflow.db").is_empty());
    }
}

//! `octoflow secret seal` and `octoflow secret key`: sealed values for `secrets.yml`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use octoflow_core::secrets::SealKey;

use crate::cli::{GlobalArgs, SecretCommand};
use crate::config::{Config, Env};

/// Runs `octoflow secret …`.
pub(crate) fn secret(global: &GlobalArgs, command: &SecretCommand, env: Env) -> Result<ExitCode> {
    match command {
        SecretCommand::Key => {
            let key = SealKey::generate().map_err(|e| anyhow!("{e}"))?;
            crate::output::stdout(&format!("{key}\n"))?;
        }
        SecretCommand::Seal => {
            let flags = super::global_flags(global);
            let config = Config::load(&flags, env)?;
            let key = config.seal_key()?.ok_or_else(|| {
                anyhow!(
                    "no key to seal with; set OCTOFLOW_SECRETS_KEY or `secrets_key_file` in config.yml (`octoflow secret key` makes one)"
                )
            })?;
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("cannot read the value on standard input")?;
            let value = value
                .strip_suffix('\n')
                .map_or(value.as_str(), |v| v.strip_suffix('\r').unwrap_or(v));
            let sealed = key.seal(value).map_err(|e| anyhow!("{e}"))?;
            crate::output::stdout(&format!("{sealed}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

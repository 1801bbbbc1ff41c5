//! Secrets kept in HashiCorp Vault (`type: vault` in `secrets.yml`): each is read once at
//! start from the KV v2 API — `GET $VAULT_ADDR/v1/<path>` with `X-Vault-Token:
//! $VAULT_TOKEN`, the value at `data.data.<key>` — and then is a secret like the others.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};
use octoflow_core::secrets::{Secrets, VaultRef};
use serde_json::Value;

/// Reads every `type: vault` secret of `secrets` into it; `env` gives `VAULT_ADDR` and
/// `VAULT_TOKEN`. The token is hidden like a secret.
pub(crate) async fn read_all(secrets: &mut Secrets, env: &BTreeMap<String, String>) -> Result<()> {
    let refs: Vec<VaultRef> = secrets.vault_refs().to_vec();
    let Some(first) = refs.first() else {
        return Ok(());
    };
    let (Some(address), Some(token)) = (env.get("VAULT_ADDR"), env.get("VAULT_TOKEN")) else {
        return Err(anyhow!(
            "secret `{}` is in Vault; set VAULT_ADDR and VAULT_TOKEN",
            first.name
        ));
    };
    secrets.hide(token);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow!("cannot build the Vault client: {e}"))?;
    for read in refs {
        let value = read_one(&client, address, token, &read)
            .await
            .map_err(|e| anyhow!("secret `{}` (Vault `{}`): {e}", read.name, read.path))?;
        secrets.set_vault_value(&read.name, value)?;
    }
    Ok(())
}

async fn read_one(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    read: &VaultRef,
) -> Result<String, String> {
    let url = format!(
        "{}/v1/{}",
        address.trim_end_matches('/'),
        read.path.trim_start_matches('/')
    );
    let answer = client
        .get(&url)
        .header("X-Vault-Token", token)
        .send()
        .await
        .map_err(|e| format!("cannot reach Vault: {}", octoflow_core::error::chain(&e)))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let errors = body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        return Err(format!(
            "Vault answered {status}{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {errors}")
            }
        ));
    }
    match &body["data"]["data"][&read.key] {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Err(format!("no key `{}` in the secret's data", read.key)),
        other => Ok(other.to_string()),
    }
}

//! `octoflow token create|list|revoke`: bearer tokens for machines (SPEC §11.1), kept in the
//! store of the data directory by the digest of their secret; no server is needed.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::Utc;
use octoflow_core::store::{ApiToken, AuthStore, Role, Store, TokenKind};
use octoflow_server::access::{TokenRequest, issue_token};

use super::user::with_store;
use crate::cli::{GlobalArgs, TokenArgs, TokenCommand};
use crate::config::Env;
use crate::output;
use crate::remote::{Table, print_json, time};

/// Runs `octoflow token …`.
pub(crate) fn token(global: &GlobalArgs, args: &TokenArgs, env: Env) -> Result<ExitCode> {
    with_store(global, &args.store, env, async |store| {
        match &args.command {
            TokenCommand::Create {
                role,
                name,
                expires,
            } => create(store, *role, name.as_deref(), *expires).await,
            TokenCommand::List(json) => list(store, json.json).await,
            TokenCommand::Revoke { id } => revoke(store, id).await,
        }
    })
}

async fn create(
    store: Arc<dyn Store>,
    role: Role,
    name: Option<&str>,
    expires: Option<Duration>,
) -> Result<ExitCode> {
    let request = TokenRequest {
        name: name.map_or_else(|| role.to_string(), ToOwned::to_owned),
        role,
        kind: TokenKind::Api,
        user: None,
        ttl: expires,
    };
    let auth: &dyn AuthStore = store.as_ref();
    let issued = issue_token(auth, request).await?;
    output::stdout(&format!("{}\n", issued.secret))?;
    let until = issued.token.expires_at.map_or_else(
        || "until revoked".to_owned(),
        |at| format!("until {}", time(Some(at))),
    );
    eprintln!(
        "token {} created: role {role}, valid {until}; its secret is shown only this once",
        issued.token.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(store: Arc<dyn Store>, json: bool) -> Result<ExitCode> {
    let tokens = store.tokens().await?;
    if json {
        print_json(&serde_json::to_value(&tokens)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tokens.is_empty() {
        eprintln!("no tokens");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID", "NAME", "ROLE", "KIND", "USER", "CREATED", "EXPIRES", "STATE",
    ]);
    let now = Utc::now();
    for token in &tokens {
        table.row(vec![
            token.id.clone(),
            token.name.clone(),
            token.role.to_string(),
            token.kind.to_string(),
            token.user.clone().unwrap_or_default(),
            time(Some(token.created_at)),
            time(token.expires_at),
            state(token, now).to_owned(),
        ]);
    }
    output::stdout(&table.render(std::io::stdout().is_terminal()))?;
    Ok(ExitCode::SUCCESS)
}

/// `active`, `revoked` or `expired`.
fn state(token: &ApiToken, now: chrono::DateTime<Utc>) -> &'static str {
    if token.revoked {
        "revoked"
    } else if token.is_usable(now) {
        "active"
    } else {
        "expired"
    }
}

async fn revoke(store: Arc<dyn Store>, id: &str) -> Result<ExitCode> {
    if !store.revoke_token(id).await? {
        bail!("no token `{id}`; `octoflow token list` shows them");
    }
    eprintln!("token {id} revoked");
    Ok(ExitCode::SUCCESS)
}

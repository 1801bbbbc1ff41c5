//! `octoflow user add|remove|list`: the people who log in to the API (SPEC §11.1), kept in the
//! store of the data directory; no server is needed.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use octoflow_core::store::{Role, Store};
use serde_json::json;

use crate::cli::{GlobalArgs, StoreArgs, UserArgs, UserCommand};
use crate::config::{Config, Env, Flags};
use crate::output;
use crate::remote::{Table, time};

/// Runs `octoflow user …`.
pub(crate) fn user(global: &GlobalArgs, args: &UserArgs, env: Env) -> Result<ExitCode> {
    // The password is read before the store is opened: nothing waits on a person typing.
    let password = match &args.command {
        UserCommand::Add {
            name,
            password_stdin,
            ..
        } => {
            check_name(name)?;
            Some(read_password(name, *password_stdin)?)
        }
        UserCommand::Remove { .. } | UserCommand::List(_) => None,
    };
    with_store(global, &args.store, env, async |store| {
        match &args.command {
            UserCommand::Add { name, role, .. } => {
                add(store, name, *role, password.as_deref().unwrap_or_default()).await
            }
            UserCommand::Remove { name } => remove(store, name).await,
            UserCommand::List(json) => list(store, json.json).await,
        }
    })
}

/// Removes user `name` and ends its sessions.
async fn remove(store: Arc<dyn Store>, name: &str) -> Result<ExitCode> {
    if !store.delete_user(name).await? {
        bail!("no user `{name}`; `octoflow user list` shows them");
    }
    let ended = octoflow_server::access::end_sessions(store.as_ref(), name).await?;
    eprintln!("user `{name}` removed; {ended} session(s) ended");
    Ok(ExitCode::SUCCESS)
}

/// Opens the store the settings name and runs `f` with it.
pub(super) fn with_store<T>(
    global: &GlobalArgs,
    store: &StoreArgs,
    env: Env,
    f: impl AsyncFnOnce(Arc<dyn Store>) -> Result<T>,
) -> Result<T> {
    let flags = Flags {
        database: store.database.clone(),
        ..super::global_flags(global)
    };
    let config = Config::load(&flags, env)?;
    crate::remote::runtime()?.block_on(async {
        let store = crate::store::open(&config).await?;
        f(store).await
    })
}

async fn add(store: Arc<dyn Store>, name: &str, role: Role, password: &str) -> Result<ExitCode> {
    let existed = store.user(name).await?.is_some();
    let user = octoflow_server::access::new_user(name, role, password)?;
    store.put_user(&user).await?;
    if existed {
        let ended = octoflow_server::access::end_sessions(store.as_ref(), name).await?;
        eprintln!("user `{name}` updated: role {role}, new password; {ended} session(s) ended");
    } else {
        eprintln!("user `{name}` added with role {role}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(store: Arc<dyn Store>, json: bool) -> Result<ExitCode> {
    let users = store.users().await?;
    if json {
        let list: Vec<_> = users
            .iter()
            .map(|u| json!({"name": u.name, "role": u.role, "created_at": u.created_at}))
            .collect();
        crate::remote::print_json(&json!(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    if users.is_empty() {
        eprintln!("no users");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["NAME", "ROLE", "CREATED"]);
    for user in &users {
        table.row(vec![
            user.name.clone(),
            user.role.to_string(),
            time(Some(user.created_at)),
        ]);
    }
    output::stdout(&table.render(std::io::stdout().is_terminal()))?;
    Ok(ExitCode::SUCCESS)
}

/// A login name: 1 to 64 characters, no spaces, colons or control characters (it goes in
/// HTTP basic credentials and in logs).
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 64 {
        bail!("a user name has 1 to 64 characters");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        bail!("user name `{name}` holds a space, a colon or a control character");
    }
    Ok(())
}

/// The password: asked twice without echo on a terminal, else the first line of stdin.
fn read_password(name: &str, from_stdin: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("no password on stdin; give it as the first line");
        }
        return Ok(password.to_owned());
    }
    let first = prompt(&format!("password for `{name}`: "))?;
    if first.is_empty() {
        bail!("the password is empty");
    }
    let second = prompt("the same password again: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// Asks for a line on the terminal with echo turned off.
fn prompt(text: &str) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

    eprint!("{text}");
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn off the terminal's echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    read.context("cannot read the password")?;
    restored.context("cannot restore the terminal's settings")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("ops-bot_1@example.org").is_ok());
        for bad in ["", "a b", "a:b", "a\tb", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

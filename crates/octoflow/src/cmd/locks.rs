//! `octoflow locks list|rm`: the concurrency keys held on a server (SPEC §8, §11.4).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use reqwest::Method;
use serde_json::Value;

use crate::cli::{JsonArg, LocksArgs, LocksCommand};
use crate::output;
use crate::remote::{self, LockView, Remote, Table, parse, print_json};

/// Runs `octoflow locks …`.
pub(crate) fn locks(args: &LocksArgs) -> Result<ExitCode> {
    let remote = Remote::new(&args.server)?;
    remote::runtime()?.block_on(async {
        match &args.command {
            LocksCommand::List(json) => list(&remote, json).await,
            LocksCommand::Rm { key, all, json } => rm(&remote, key.as_deref(), *all, json).await,
        }
    })
}

async fn list(remote: &Remote, json: &JsonArg) -> Result<ExitCode> {
    let answer = remote
        .get(&["locks"], &[("page", "1"), ("per_page", "500")])
        .await?;
    if json.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["KEY", "RUN", "FLOW", "STATUS", "SINCE", "NODE"]);
    for item in remote::items(&answer)? {
        table.row(parse::<LockView>(item, "a lock")?.row());
    }
    if table.is_empty() {
        eprintln!("no locks are held");
    } else {
        output::stdout(&table.render(std::io::stdout().is_terminal()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn rm(remote: &Remote, key: Option<&str>, all: bool, json: &JsonArg) -> Result<ExitCode> {
    let segments: Vec<&str> = match key {
        Some(key) if !all => vec!["locks", key],
        _ => vec!["locks"],
    };
    let answer = remote.call(Method::DELETE, &segments, &[], None).await?;
    if json.json {
        if !answer.body.is_null() {
            print_json(&answer.body)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let released = ["released", "freed", "count"]
        .iter()
        .find_map(|k| answer.body.get(*k).and_then(Value::as_u64));
    let holds = |n: u64| {
        if n == 1 {
            "1 hold".to_owned()
        } else {
            format!("{n} holds")
        }
    };
    match (key, released) {
        (Some(key), Some(n)) if !all => eprintln!("freed lock `{key}` ({})", holds(n)),
        (Some(key), None) if !all => eprintln!("freed lock `{key}`"),
        (_, Some(n)) => eprintln!("freed every lock ({})", holds(n)),
        (_, None) => eprintln!("freed every lock"),
    }
    Ok(ExitCode::SUCCESS)
}

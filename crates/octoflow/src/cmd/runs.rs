//! `octoflow runs list|show|logs|cancel|retry`: a server's runs (SPEC §11.3, §14), and the
//! following of a run's log that `flows trigger --wait` shares.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};
use octoflow_core::store::RunStatus;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{JsonArg, LogsArgs, RetryArgs, RunsArgs, RunsCommand, RunsListArgs, WaitArgs};
use crate::output;
use crate::remote::{self, Remote, RunView, Table, log_line, parse, print_json, status_of};

/// Runs `octoflow runs …`.
pub(crate) fn runs(args: &RunsArgs) -> Result<ExitCode> {
    let remote = Remote::new(&args.server)?;
    remote::runtime()?.block_on(async {
        match &args.command {
            RunsCommand::List(list_args) => list(&remote, list_args).await,
            RunsCommand::Show { id, json } => show(&remote, id, json).await,
            RunsCommand::Logs(logs_args) => logs(&remote, logs_args).await,
            RunsCommand::Cancel { id, json } => cancel(&remote, id, json).await,
            RunsCommand::Retry(retry_args) => retry(&remote, retry_args).await,
        }
    })
}

async fn list(remote: &Remote, args: &RunsListArgs) -> Result<ExitCode> {
    let limit = args.limit.to_string();
    let mut query = vec![("page", "1"), ("per_page", limit.as_str())];
    if let Some(flow) = &args.flow {
        query.push(("flow", flow));
    }
    if let Some(status) = &args.status {
        query.push(("status", status));
    }
    let answer = remote.get(&["runs"], &query).await?;
    if args.json.json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID", "FLOW", "STATUS", "TRIGGER", "CREATED", "DURATION", "ERROR",
    ]);
    let items = remote::items(&answer)?;
    for item in items {
        table.row(parse::<RunView>(item, "a run")?.row());
    }
    let terminal = std::io::stdout().is_terminal();
    if table.is_empty() {
        eprintln!("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    output::stdout(&table.render(terminal))?;
    let total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
    if terminal && total > items.len() as u64 {
        eprintln!("{} of {total} runs; use --limit to see more", items.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(remote: &Remote, id: &str, json: &JsonArg) -> Result<ExitCode> {
    let answer = remote.get(&["runs", id], &[]).await?;
    if json.json {
        print_json(&answer)?;
    } else {
        output::stdout(&parse::<RunView>(&answer, "a run")?.details())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(remote: &Remote, args: &LogsArgs) -> Result<ExitCode> {
    if !args.follow {
        let mut query = Vec::new();
        if let Some(step) = &args.step {
            query.push(("step", step.as_str()));
        }
        let mut text = remote.get_text(&["runs", &args.id, "logs"], &query).await?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        output::stdout(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = follow(remote, &args.id, args.step.as_deref(), Lines::Stdout).await?;
    Ok(exit_for(status))
}

async fn cancel(remote: &Remote, id: &str, json: &JsonArg) -> Result<ExitCode> {
    let answer = remote
        .call(Method::POST, &["runs", id, "cancel"], &[], None)
        .await?;
    if json.json {
        print_json(&answer.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let run: RunView = parse(&answer.body, "a run")?;
    match run.status() {
        Some(RunStatus::Cancelled) => eprintln!("run {} cancelled", run.id),
        Some(status) if status.is_final() => {
            eprintln!("run {} had already ended: {status}", run.id);
        }
        _ => eprintln!(
            "run {} is being cancelled; its running steps are being stopped",
            run.id
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(remote: &Remote, args: &RetryArgs) -> Result<ExitCode> {
    let body = json!({ "from_failed": args.from_failed });
    let answer = remote
        .call(Method::POST, &["runs", &args.id, "retry"], &[], Some(&body))
        .await?;
    let run: RunView = parse(&answer.body, "a run")?;
    let from = if args.from_failed {
        ", from its failed step"
    } else {
        ""
    };
    eprintln!(
        "run {} of flow `{}` {} (retry of run {}{from})",
        run.id, run.flow, run.status, args.id
    );
    started(remote, &answer.body, &run, &args.wait, args.json.json).await
}

/// What a command that started (or found) a run prints: the run's id on stdout (or with
/// --json the run); with --wait, the run's log on stderr until it ends, then how it ended,
/// and the exit code of `octoflow run`.
pub(super) async fn started(
    remote: &Remote,
    answer: &Value,
    run: &RunView,
    wait: &WaitArgs,
    json: bool,
) -> Result<ExitCode> {
    if !wait.wait {
        if json {
            print_json(answer)?;
        } else {
            output::stdout(&format!("{}\n", run.id))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        output::stdout(&format!("{}\n", run.id))?;
    }
    let lines = if wait.quiet {
        Lines::None
    } else {
        Lines::Stderr
    };
    let status = follow(remote, &run.id, None, lines).await?;
    let answer = remote.get(&["runs", &run.id], &[]).await?;
    let ended: RunView = parse(&answer, "a run")?;
    if json {
        print_json(&answer)?;
    }
    let status = status.or_else(|| ended.status());
    let took = remote::took(ended.started_at, ended.finished_at);
    let took = if took.is_empty() {
        took
    } else {
        format!(" in {took}")
    };
    if status == Some(RunStatus::Succeeded) {
        eprintln!("run {} succeeded{took}", ended.id);
    } else {
        let word = status.map_or_else(|| ended.status.clone(), |s| s.to_string());
        let why = ended.error_text();
        let why = if why.is_empty() {
            why
        } else {
            format!(": {why}")
        };
        eprintln!("run {} {word}{took}{why}", ended.id);
    }
    Ok(exit_for(status))
}

/// Where followed log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    Stdout,
    Stderr,
    None,
}

/// Follows a run's log (`?follow=true`, Server-Sent Events) until its `end` event, printing
/// each line as it arrives; returns the status the run ended with.
async fn follow(
    remote: &Remote,
    id: &str,
    step: Option<&str>,
    lines: Lines,
) -> Result<Option<RunStatus>> {
    let mut query = vec![("follow", "true")];
    if let Some(step) = step {
        query.push(("step", step));
    }
    let mut events = remote.events(&["runs", id, "logs"], &query).await?;
    while let Some(event) = events.next().await? {
        match event.name.as_str() {
            "end" => {
                if let Some(status) = status_of(&event.data) {
                    return Ok(Some(status));
                }
                return run_status(remote, id).await;
            }
            "error" => {
                let message = serde_json::from_str::<Value>(&event.data)
                    .ok()
                    .and_then(|v| {
                        let e = v.get("error").unwrap_or(&v);
                        e.get("message").and_then(Value::as_str).map(str::to_owned)
                    })
                    .unwrap_or(event.data);
                bail!("the server stopped following run {id}: {message}");
            }
            "message" | "log" => {
                let mut text = log_line(&event.data);
                text.push('\n');
                match lines {
                    Lines::Stdout => output::stdout(&text)?,
                    Lines::Stderr => eprint!("{text}"),
                    Lines::None => {}
                }
            }
            _ => {}
        }
    }
    // The stream closed without an `end`: the run may have ended anyway.
    match run_status(remote, id).await? {
        Some(status) if status.is_final() => Ok(Some(status)),
        _ => bail!("the log stream of run {id} closed before the run ended"),
    }
}

/// A run's status as the server has it now.
async fn run_status(remote: &Remote, id: &str) -> Result<Option<RunStatus>> {
    let answer = remote.get(&["runs", id], &[]).await?;
    Ok(parse::<RunView>(&answer, "a run")?.status())
}

/// 0 when the run succeeded, 1 otherwise.
fn exit_for(status: Option<RunStatus>) -> ExitCode {
    if status == Some(RunStatus::Succeeded) {
        ExitCode::SUCCESS
    } else {
        output::failure()
    }
}

//! `octoflow store copy`: copies every record of one store into another exactly as kept —
//! the way from one machine (a `SQLite` file) to many (one PostgreSQL database).
//!
//! The rules (what a target must hold, the order of the copy, how it resumes) belong to
//! [`copy_store`]; this command opens both ends, tells how far it got on stderr, and
//! explains a refused target. URLs are only ever shown without their password.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use octoflow_core::secrets::Redactor;
use octoflow_core::store::{CopyCounts, CopyError, CopyMode, CopyOptions, CopyReport, copy_store};

use crate::cli::{GlobalArgs, StoreCommand, StoreCopyArgs};
use crate::config::{Config, Database, Env, parse_database_url};
use crate::output::note;
use crate::store::open_database;

/// Runs read between two progress lines.
const PROGRESS_EVERY: u64 = 1_000;

/// Runs `octoflow store …`.
pub(crate) fn store(global: &GlobalArgs, command: &StoreCommand, env: Env) -> Result<ExitCode> {
    match command {
        StoreCommand::Copy(args) => copy(global, args, env),
    }
}

/// `octoflow store copy`.
fn copy(global: &GlobalArgs, args: &StoreCopyArgs, env: Env) -> Result<ExitCode> {
    let (from_shown, to_shown) = (shown(&args.from), shown(&args.to));
    if args.from == args.to {
        bail!("`--from` and `--to` name the same store `{from_shown}`");
    }
    let from = parse_database_url(&args.from)
        .with_context(|| format!("invalid `--from` URL `{from_shown}`"))?;
    let to =
        parse_database_url(&args.to).with_context(|| format!("invalid `--to` URL `{to_shown}`"))?;
    if let Database::Sqlite(path) = &from
        && !path.exists()
    {
        bail!("no store at `{}` to copy from", path.display());
    }
    let config = Config::load(&super::global_flags(global), env)?;
    let options = CopyOptions {
        mode: mode(args),
        ..CopyOptions::default()
    };
    super::install_log(&config);
    let copied = async {
        let source = open_database(from, &config.store).await?;
        let target = open_database(to, &config.store).await?;
        note(&format!("copying `{from_shown}` to `{to_shown}`"));
        let mut told = 0;
        let report = copy_store(source.as_ref(), target.as_ref(), options, |report| {
            if report.runs_read >= told + PROGRESS_EVERY {
                told = report.runs_read - report.runs_read % PROGRESS_EVERY;
                note(&progress(report));
            }
        })
        .await
        .map_err(|err| refused(err, &from_shown, &to_shown))?;
        note(&summary(&report, &from_shown, &to_shown));
        anyhow::Ok(())
    };
    crate::remote::runtime()?.block_on(copied)?;
    Ok(ExitCode::SUCCESS)
}

/// What the flags ask of the target.
fn mode(args: &StoreCopyArgs) -> CopyMode {
    if args.resume {
        CopyMode::Resume
    } else if args.force {
        CopyMode::Force
    } else {
        CopyMode::Empty
    }
}

/// A store URL as it may be shown: without its password.
fn shown(url: &str) -> String {
    Redactor::default().text(url).into_owned()
}

/// The error of a copy, with a hint when the target was refused.
fn refused(err: CopyError, from: &str, to: &str) -> anyhow::Error {
    let hint = match &err {
        CopyError::NotEmpty(_) => {
            "pass --resume to go on with an interrupted copy of this source, or --force to add \
             to what it holds"
        }
        CopyError::NotACopy { .. } => "pass --force to add to what it holds",
        CopyError::Source(_) | CopyError::Target(_) => {
            return anyhow::Error::new(err).context(format!("cannot copy `{from}` to `{to}`"));
        }
    };
    anyhow!("cannot copy `{from}` to `{to}`: {err}; {hint}")
}

/// `1000 runs read: 990 copied (…), 10 already there`.
fn progress(report: &CopyReport) -> String {
    format!(
        "{} runs read: {} copied ({}), {} already there",
        report.runs_read,
        report.copied.runs,
        attached(&report.copied),
        report.runs_present
    )
}

/// The last line: what was copied, per kind.
fn summary(report: &CopyReport, from: &str, to: &str) -> String {
    let copied = &report.copied;
    let mut parts = vec![format!(
        "{} ({})",
        count(copied.runs, "run", "runs"),
        attached(copied)
    )];
    for (n, one, many) in [
        (copied.users, "user", "users"),
        (copied.tokens, "token", "tokens"),
        (copied.schedules, "schedule", "schedules"),
        (copied.schedule_marks, "schedule mark", "schedule marks"),
        (copied.state_keys, "state key", "state keys"),
    ] {
        if n > 0 {
            parts.push(count(n, one, many));
        }
    }
    if copied.node_keys > 0 {
        parts.push("the node key".to_owned());
    }
    let what = match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => parts.join(""),
    };
    let resumed = report
        .resumed_after
        .map(|after| format!("; resumed after run {after}"))
        .unwrap_or_default();
    let present = match report.runs_present {
        0 => String::new(),
        n => format!("; {} already there", count(n, "run", "runs")),
    };
    format!("copied `{from}` to `{to}`: {what}{resumed}{present}")
}

/// `12 step runs, 40 log lines`.
fn attached(copied: &CopyCounts) -> String {
    format!(
        "{}, {}",
        count(copied.step_runs, "step run", "step runs"),
        count(copied.log_lines, "log line", "log lines")
    )
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use octoflow_core::store::RunId;

    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            shown("postgres://octo:hunter2@db.internal:5432/octoflow"),
            "postgres://***@db.internal:5432/octoflow"
        );
        assert_eq!(
            shown("sqlite://data/octoflow.db"),
            "sqlite://data/octoflow.db"
        );
    }

    #[test]
    fn the_summary_names_each_kind_copied() {
        let report = CopyReport {
            copied: CopyCounts {
                runs: 3,
                step_runs: 9,
                log_lines: 1,
                users: 1,
                tokens: 2,
                schedule_marks: 1,
                node_keys: 1,
                ..CopyCounts::default()
            },
            runs_read: 5,
            runs_present: 2,
            resumed_after: None,
        };
        assert_eq!(
            summary(&report, "sqlite://a.db", "postgres://***@h/db"),
            "copied `sqlite://a.db` to `postgres://***@h/db`: 3 runs (9 step runs, 1 log line), \
             1 user, 2 tokens, 1 schedule mark and the node key; 2 runs already there"
        );
        let id = RunId::new();
        let nothing = CopyReport {
            resumed_after: Some(id),
            ..CopyReport::default()
        };
        assert_eq!(
            summary(&nothing, "a", "b"),
            format!("copied `a` to `b`: 0 runs (0 step runs, 0 log lines); resumed after run {id}")
        );
        assert_eq!(
            progress(&report),
            "5 runs read: 3 copied (9 step runs, 1 log line), 2 already there"
        );
    }

    #[test]
    fn a_refused_target_gets_a_hint() {
        let err = refused(
            CopyError::NotEmpty(octoflow_core::store::Holdings {
                runs: 2,
                ..Default::default()
            }),
            "a",
            "b",
        );
        assert_eq!(
            err.to_string(),
            "cannot copy `a` to `b`: the target is not empty: it holds 2 runs; pass --resume to \
             go on with an interrupted copy of this source, or --force to add to what it holds"
        );
    }
}

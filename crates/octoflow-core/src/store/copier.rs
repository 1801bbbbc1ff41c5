//! Copying one store into another (`octoflow store copy`): what a target must hold to be
//! written, and the copy itself, page by page through [`CopyStore`](super::CopyStore).
//!
//! The copy writes, in order: the records beside the runs (users, tokens, schedules, marks,
//! state, node key) in one transaction, then the runs in pages in id order, each page with
//! its step runs and log lines in one transaction. An interrupted copy therefore leaves the
//! target holding every record beside the runs (or none of them) and the source's first
//! runs in id order: a prefix. [`CopyMode::Resume`] checks that this is what the target
//! holds and goes on after its last run; every import skips what the target already holds,
//! so running a finished copy again changes nothing.
//!
//! Nothing may write the source while it is copied: a run that ends during the copy may be
//! copied as it was before.

use std::fmt;

use super::{CopyCounts, Page, RunFilter, RunId, Store, StoreError, StoreRecords};

/// Runs per page when none is given.
pub const COPY_PAGE: u32 = 100;

/// What a copy requires of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMode {
    /// The target holds no runs, users, tokens, API schedules or flow state.
    #[default]
    Empty,
    /// The target holds what an interrupted copy from the same source wrote, or nothing:
    /// the copy goes on after the last run it holds.
    Resume,
    /// Whatever the target holds: what it lacks is added, what it holds is left as it is.
    Force,
}

/// How to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// What the target must hold.
    pub mode: CopyMode,
    /// Runs read and written at a time (each page is one transaction of the target).
    pub page: u32,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            mode: CopyMode::Empty,
            page: COPY_PAGE,
        }
    }
}

/// How far a copy has got; at the end, what it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// What was written to the target.
    pub copied: CopyCounts,
    /// Runs read from the source.
    pub runs_read: u64,
    /// Runs read that the target already held (left as they were).
    pub runs_present: u64,
    /// With [`CopyMode::Resume`]: the last run the target held, after which the copy went on.
    pub resumed_after: Option<RunId>,
}

/// What a target holds that a copy would mix with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Runs.
    pub runs: u64,
    /// Users.
    pub users: u64,
    /// Tokens.
    pub tokens: u64,
    /// API schedules.
    pub schedules: u64,
    /// Keys of flow state.
    pub state_keys: u64,
}

impl Holdings {
    fn of(runs: u64, records: &StoreRecords) -> Self {
        Self {
            runs,
            users: records.users.len() as u64,
            tokens: records.tokens.len() as u64,
            schedules: records.schedules.len() as u64,
            state_keys: records.state.len() as u64,
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Holdings {
    /// `3 runs, 1 user and 2 tokens`: the kinds it holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.runs, "run"),
            (self.users, "user"),
            (self.tokens, "token"),
            (self.schedules, "schedule"),
            (self.state_keys, "state key"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}{}", if n == 1 { "" } else { "s" }))
        .collect();
        match parts.split_last() {
            None => f.write_str("nothing"),
            Some((last, [])) => f.write_str(last),
            Some((last, rest)) => write!(f, "{} and {last}", rest.join(", ")),
        }
    }
}

/// Why a copy did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// [`CopyMode::Empty`] and the target holds something.
    #[error("the target is not empty: it holds {0}")]
    NotEmpty(Holdings),
    /// [`CopyMode::Resume`] and the target holds what a copy from this source did not write.
    #[error("the target is not an interrupted copy of the source: {what}")]
    NotACopy {
        /// The first record found that the copy would not have written.
        what: String,
    },
    /// Reading the source failed.
    #[error("cannot read the source store")]
    Source(#[source] StoreError),
    /// Reading or writing the target failed.
    #[error("cannot read or write the target store")]
    Target(#[source] StoreError),
}

/// Copies `from` into `to` as `options` say; `progress` hears the report after each page of
/// runs. Returns the final report.
pub async fn copy_store(
    from: &dyn Store,
    to: &dyn Store,
    options: CopyOptions,
    mut progress: impl FnMut(&CopyReport),
) -> Result<CopyReport, CopyError> {
    let page = options.page.max(1);
    let records = from.export_records().await.map_err(CopyError::Source)?;
    let mut report = CopyReport::default();
    match options.mode {
        CopyMode::Empty => {
            let held = to.export_records().await.map_err(CopyError::Target)?;
            let runs = to
                .list_runs(
                    &RunFilter::default(),
                    Page {
                        page: 1,
                        per_page: 1,
                    },
                )
                .await
                .map_err(CopyError::Target)?
                .total;
            let holdings = Holdings::of(runs, &held);
            if !holdings.is_empty() {
                return Err(CopyError::NotEmpty(holdings));
            }
        }
        CopyMode::Resume => {
            let held = to.export_records().await.map_err(CopyError::Target)?;
            check_records(&records, &held)?;
            report.resumed_after = check_prefix(from, to, page).await?;
        }
        CopyMode::Force => {}
    }
    report.copied += to
        .import_records(&records)
        .await
        .map_err(CopyError::Target)?;
    let mut after = report.resumed_after;
    loop {
        let runs = from
            .export_runs(after, page)
            .await
            .map_err(CopyError::Source)?;
        let Some(last) = runs.last() else {
            break;
        };
        after = Some(last.run.id);
        let written = to.import_runs(&runs).await.map_err(CopyError::Target)?;
        report.runs_read += runs.len() as u64;
        report.runs_present += runs.len() as u64 - written.runs;
        report.copied += written;
        progress(&report);
    }
    Ok(report)
}

/// Checks that every user, token, API schedule and state key of the target is the source's.
fn check_records(source: &StoreRecords, target: &StoreRecords) -> Result<(), CopyError> {
    let not_a_copy = |what: String| Err(CopyError::NotACopy { what });
    if let Some(user) = target.users.iter().find(|u| !source.users.contains(u)) {
        return not_a_copy(format!("its user `{}` is not the source's", user.name));
    }
    if let Some(token) = target.tokens.iter().find(|t| !source.tokens.contains(t)) {
        return not_a_copy(format!(
            "its token `{}` is not the source's",
            token.token.id
        ));
    }
    if let Some(schedule) = target
        .schedules
        .iter()
        .find(|s| !source.schedules.contains(s))
    {
        return not_a_copy(format!(
            "its schedule `{}` is not the source's",
            schedule.id
        ));
    }
    if let Some(state) = target.state.iter().find(|t| {
        !source
            .state
            .iter()
            .any(|s| (&s.flow, &s.key, &s.value) == (&t.flow, &t.key, &t.value))
    }) {
        return not_a_copy(format!(
            "its state key `{}` of flow `{}` is not the source's",
            state.key, state.flow
        ));
    }
    Ok(())
}

/// Checks that the target's runs are the source's first runs in id order; returns the last
/// of them.
async fn check_prefix(
    from: &dyn Store,
    to: &dyn Store,
    page: u32,
) -> Result<Option<RunId>, CopyError> {
    let mut last = None;
    loop {
        let held = to.run_ids(last, page).await.map_err(CopyError::Target)?;
        if held.is_empty() {
            return Ok(last);
        }
        let theirs = from.run_ids(last, page).await.map_err(CopyError::Source)?;
        if let Some((_, id)) = held
            .iter()
            .enumerate()
            .find(|(i, id)| theirs.get(*i) != Some(*id))
        {
            return Err(CopyError::NotACopy {
                what: format!("its run `{id}` is not the source's next run in id order"),
            });
        }
        last = held.last().copied();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn case(holdings: Holdings, text: &str) {
        assert_eq!(holdings.to_string(), text);
    }

    #[test]
    fn holdings_name_the_kinds_held() {
        case(Holdings::default(), "nothing");
        case(
            Holdings {
                runs: 1,
                ..Holdings::default()
            },
            "1 run",
        );
        case(
            Holdings {
                runs: 3,
                users: 1,
                tokens: 2,
                ..Holdings::default()
            },
            "3 runs, 1 user and 2 tokens",
        );
        case(
            Holdings {
                schedules: 2,
                state_keys: 1,
                ..Holdings::default()
            },
            "2 schedules and 1 state key",
        );
    }
}

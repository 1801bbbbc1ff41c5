//! The `file` kind: read, write, append, delete, move, copy or test one file, confined to
//! the data directory and `files.roots`. Result: the parsed content for `read`, else a small
//! object such as `{path, bytes}`.

mod codec;
mod ops;
mod settings;
#[cfg(test)]
mod tests;
mod xml;

use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;

use self::ops::{Action, Op};
use self::settings::{FileSettings, Format, Mode};

/// The `file` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct File;

impl StepKind for File {
    const NAME: &'static str = "file";
    type Settings = FileSettings;

    fn check(&self, settings: &FileSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = settings.shape_problems();
        let Some(files) = cx.files else {
            return problems;
        };
        for (name, tpl) in [("path", Some(&settings.path)), ("to", settings.to.as_ref())] {
            if let Some(path) = tpl.and_then(Tpl::as_literal)
                && let Err(err) = files.resolve(path)
            {
                problems.push(Problem::at(name, chain(&err)));
            }
        }
        problems
    }

    async fn run(&self, settings: &FileSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let path = cx.render("file.path", &settings.path)?;
        let format = settings
            .explicit_format()
            .unwrap_or_else(|| Format::from_extension(&path));
        let action = match settings.mode {
            Mode::Read => Action::Read,
            Mode::Delete => Action::Delete,
            Mode::Exists => Action::Exists,
            Mode::Write => Action::Write(input(settings, cx)?),
            Mode::Append => Action::Append(input(settings, cx)?),
            Mode::Move => Action::Move(target(settings, cx)?),
            Mode::Copy => Action::Copy(target(settings, cx)?),
        };
        let op = Op {
            action,
            format,
            path,
        };
        let files = cx.files().clone();
        let done = tokio::task::spawn_blocking(move || op.execute(&files))
            .await
            .map_err(|e| StepError::Internal(Box::new(e)))?;
        done.map_err(|err| StepError::Failed {
            message: chain(&err),
            retryable: err.is_retryable(),
        })
    }
}

/// The value a `write` or `append` puts in the file.
fn input(settings: &FileSettings, cx: &StepCx<'_>) -> Result<Value, StepError> {
    cx.input_with(settings.data_key.as_deref())?.ok_or_else(|| {
        StepError::fatal(format!(
            "mode `{}` writes a value from `data`; set `data_key` (`\".\"` for all of `data`)",
            settings.mode.as_str()
        ))
    })
}

/// The rendered `to` of a `move` or `copy`.
fn target(settings: &FileSettings, cx: &StepCx<'_>) -> Result<String, StepError> {
    let to = settings.to.as_ref().ok_or_else(|| {
        StepError::fatal(format!(
            "mode `{}` needs a target; set `to`",
            settings.mode.as_str()
        ))
    })?;
    cx.render("file.to", to)
}

//! The `exec` kind: runs one program (an argument list, or a script through a shell) in its
//! own process group, streams its output to the step log, and returns
//! `{exit_code, stdout, stderr, duration_ms}`.

mod output;
mod process;
mod settings;

use octoflow_core::step::prelude::*;

use settings::ExecSettings;

/// The `exec` step kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Exec;

impl StepKind for Exec {
    const NAME: &'static str = "exec";
    type Settings = ExecSettings;

    fn check(&self, settings: &ExecSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        settings.problems(cx)
    }

    async fn run(&self, settings: &ExecSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let invocation = settings.render(cx)?;
        let is_dir = tokio::fs::metadata(&invocation.cwd)
            .await
            .is_ok_and(|m| m.is_dir());
        if !is_dir {
            let cwd = invocation.cwd.display();
            return Err(StepError::fatal(format!(
                "cannot use `cwd`: `{cwd}` is not a directory"
            )));
        }
        let finished = process::run(
            invocation,
            cx.log(),
            cx.redactor(),
            cx.cancel_token(),
            cx.process_groups(),
        )
        .await?;
        output::outcome(&finished, &settings.success_codes, settings.parse)
    }
}

#[cfg(test)]
mod tests;

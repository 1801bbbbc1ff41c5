//! `octoflow man [--dir DIR]`: manual pages made from the command line's own definition, so
//! they say what `--help` says.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};

/// Prints the main page, or writes every page into `--dir`.
pub(crate) fn man(args: &ManArgs) -> Result<ExitCode> {
    let command = Cli::command();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write the manual pages into `{}`", dir.display()))?;
        crate::output::note(&format!("octoflow man: pages written to {}", dir.display()));
        return Ok(ExitCode::SUCCESS);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    crate::output::stdout(&String::from_utf8_lossy(&page))?;
    Ok(ExitCode::SUCCESS)
}

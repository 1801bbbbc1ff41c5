//! `octoflow schema flow|config|secrets`: the JSON Schema of a file octoflow reads, made from
//! the types its loader reads the file into, for editors.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{GlobalArgs, SchemaArgs, SchemaFile};
use crate::config::{Config, Env};
use crate::flows;

/// Prints the schema asked for on stdout.
pub(crate) fn schema(global: &GlobalArgs, args: &SchemaArgs, env: Env) -> Result<ExitCode> {
    let schema = match args.file {
        SchemaFile::Flow => {
            // The kinds of this build, registered as `validate` registers them.
            let config = Config::load(&super::global_flags(global), env)?;
            octoflow_core::flow::flow_schema(&flows::registry(&config))
        }
        SchemaFile::Config => crate::config::config_schema(),
        SchemaFile::Secrets => octoflow_core::secrets::secrets_schema(),
    };
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    crate::output::stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

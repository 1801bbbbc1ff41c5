//! `octoflow`: runs YAML flows on this machine and records every run (SPEC §14).
//!
//! This file only parses the command line, dispatches and turns the outcome into an exit
//! code: 0 success, 1 the thing asked about failed (a run, a validation, a refused trigger),
//! 2 a usage or internal error, printed to stderr as `error: {chain}` (STYLE B.4).
#![allow(missing_docs)] // a binary: nothing here is a public API
#![allow(clippy::print_stderr)] // the one place errors are printed

mod cli;
mod cmd;
mod config;
mod flows;
mod live;
mod node;
mod output;
mod relocations;
mod remote;
mod store;
mod vault;

use std::process::ExitCode;

use clap::Parser;

/// A run makes many small allocations on one thread and frees them on another; this
/// allocator keeps that cheap where the system one contends on its arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::dispatch(&cli) {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            for line in octoflow_core::error::chain(err.as_ref()).lines() {
                eprintln!("error: {line}");
            }
            cmd::exit_code(&err)
        }
    }
}

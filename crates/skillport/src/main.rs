//! `skillport`: build, validate, inspect and export Agent Skills as OCI images.
//!
//! A thin binary: argument parsing, output formatting and error reporting live here; every
//! decision about skills, images and the store lives in the library crates.

#[macro_use]
mod output;
mod cli;
mod commands;
mod fetch;
mod remote;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_logging(cli.verbose);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

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

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            if err.use_stderr() {
                for arg in std::env::args_os().skip(1) {
                    if let Some(hint) = output::dash_folder_hint(&arg) {
                        eprintln!("hint: {hint}");
                    }
                }
            }
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    output::init_logging(cli.verbose);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

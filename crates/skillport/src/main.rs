//! `skillport`: build, validate, inspect and export Agent Skills as OCI images.
//!
//! A thin binary: argument parsing, output formatting and error reporting live here; every
//! decision about skills, images and the store lives in the library crates.

#[macro_use]
mod output;
mod cli;
mod commands;
mod demo;
mod fetch;
mod install;
mod remote;
mod signing;

use std::process::ExitCode;

/// The static (musl) build allocates with mimalloc: musl's allocator takes one lock for every
/// thread (see Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let parsed = cli::Cli::command().try_get_matches().and_then(|matches| {
        let cli = cli::Cli::from_arg_matches(&matches)?;
        Ok((cli, cli::given_globals(&matches)))
    });
    let (cli, given) = match parsed {
        Ok(parsed) => parsed,
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
    match commands::run(cli, &given) {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

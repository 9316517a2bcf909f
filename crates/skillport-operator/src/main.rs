//! `skillport-operator`: prints the CRD today; `run` and `render` come next (issue 12).

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Skillport operator: SkillSets into pods.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the SkillSet CustomResourceDefinition (YAML).
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => std::io::stdout()
            .write_all(skillport_operator::crd::crd_yaml().as_bytes())
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

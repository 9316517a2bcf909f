//! `skillport-operator`: `crd` prints the CRD, `render` attaches skills offline; `run` (the
//! controller) comes next.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use skillport_operator::api::Delivery;
use skillport_operator::render::{RenderError, RenderRequest, render};
use skillport_operator::translate::Options;

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
    /// Print a workload with a SkillSet's skills attached (and the plan ConfigMap it mounts),
    /// without a cluster: the same translation the operator applies.
    Render(RenderArgs),
}

#[derive(clap::Args)]
struct RenderArgs {
    /// The SkillSet (YAML).
    #[arg(long, value_name = "FILE")]
    skillset: PathBuf,
    /// The Deployment, StatefulSet, DaemonSet, ReplicaSet or Job (YAML).
    #[arg(long, value_name = "FILE")]
    workload: PathBuf,
    /// Digests and commits: `skills: [{name, digest}|{name, commit}]`, the shape of a SkillSet's
    /// status.skills. [default: the SkillSet's status, or digests written in the images]
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Overrides the SkillSet's delivery. Offline, auto means init-container, which works on
    /// every cluster.
    #[arg(long, value_enum)]
    delivery: Option<DeliveryArg>,
    /// The image with the static `skillport` binary (fetch, verify).
    #[arg(long, value_name = "IMAGE", env = "SKILLPORT_INIT_IMAGE")]
    init_image: String,
    /// A PEM file of CA certificates for registries with a private CA, handed to the fetch
    /// init container in the plan ConfigMap. Repeatable.
    #[arg(long, value_name = "FILE")]
    ca_file: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeliveryArg {
    Auto,
    ImageVolume,
    InitContainer,
}

impl From<DeliveryArg> for Delivery {
    fn from(arg: DeliveryArg) -> Delivery {
        match arg {
            DeliveryArg::Auto => Delivery::Auto,
            DeliveryArg::ImageVolume => Delivery::ImageVolume,
            DeliveryArg::InitContainer => Delivery::InitContainer,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print(&skillport_operator::crd::crd_yaml()),
        Command::Render(args) => run_render(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = err
                .downcast_ref::<RenderError>()
                .and_then(RenderError::hint)
            {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run_render(args: &RenderArgs) -> anyhow::Result<()> {
    let read = |path: &Path, what: &str| {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the {what} {}", path.display()))
    };
    let skill_set = read(&args.skillset, "SkillSet")?;
    let workload = read(&args.workload, "workload")?;
    let lock = args
        .lock
        .as_deref()
        .map(|path| read(path, "lock"))
        .transpose()?;
    let mut options = Options::new(&args.init_image);
    if !args.ca_file.is_empty() {
        let mut bundle = String::new();
        for path in &args.ca_file {
            let pem = read(path, "CA file")?;
            bundle.push_str(pem.trim_end());
            bundle.push('\n');
        }
        options.ca_bundle = Some(bundle);
    }
    let rendered = render(&RenderRequest {
        skill_set: &skill_set,
        workload: &workload,
        lock: lock.as_deref(),
        delivery: args.delivery.map(Delivery::from),
        options: &options,
    })?;
    print(&rendered)
}

fn print(text: &str) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

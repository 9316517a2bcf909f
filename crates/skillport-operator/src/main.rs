//! `skillport-operator`: `run` is the controller, `render` attaches skills offline, `crd` prints
//! the CRD.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use skillport_operator::api::Delivery;
use skillport_operator::controller::ImageVolumes;
use skillport_operator::render::{RenderError, RenderRequest, render};
use skillport_operator::runtime::{self, Config};
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
    /// Run the controller: resolve each SkillSet's skills to digests, attach them to its
    /// workload with server-side apply, and report on the SkillSet. Kubeconfig from
    /// KUBECONFIG (or ~/.kube/config), else the in-cluster ServiceAccount.
    Run(RunArgs),
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

#[derive(clap::Args)]
struct RunArgs {
    /// The image with the static `skillport` binary (fetch, verify), pinned by digest.
    #[arg(long, value_name = "IMAGE", env = "SKILLPORT_INIT_IMAGE")]
    init_image: String,
    /// A PEM file of CA certificates for registries with a private CA: trusted when resolving
    /// and handed to the fetch init container. Repeatable.
    #[arg(long, value_name = "FILE")]
    ca_file: Vec<PathBuf>,
    /// Whether `delivery: Auto` uses image volumes: detect asks the API server (a dry-run Pod).
    #[arg(long, value_enum, default_value = "detect")]
    image_volumes: ImageVolumesArg,
    /// How often the API server is asked again whether it serves image volumes.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    probe_interval: u64,
    /// The operator's namespace (the dry-run probe Pod is made there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "skillport-system")]
    namespace: String,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// SkillSets reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Elect a leader through the Lease skillport-operator in --namespace, so that several
    /// replicas can run (one reconciles, the others stand by).
    #[arg(long)]
    leader_elect: bool,
    /// Serve the admission webhook over HTTPS with this certificate (PEM chain), e.g. tls.crt
    /// of a Secret cert-manager writes; read again when it changes.
    #[arg(long, value_name = "FILE", requires = "webhook_key")]
    webhook_cert: Option<PathBuf>,
    /// The webhook certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "webhook_cert")]
    webhook_key: Option<PathBuf>,
    /// Where the webhook listens.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:9443")]
    webhook_addr: std::net::SocketAddr,
    /// The ServiceAccount, in each SkillSet's own namespace, the operator acts as for SkillSets
    /// without spec.serviceAccountName: workloads, Secrets and plan ConfigMaps are read and
    /// written with its rights only (RBAC decides; bind it to the ClusterRole skillport-tenant).
    #[arg(long, value_name = "NAME", default_value = skillport_operator::tenant::DEFAULT_SERVICE_ACCOUNT)]
    default_service_account: String,
    /// Let SkillSets mount skills under system folders (/bin, /sbin, /usr, /lib*, /etc, /boot,
    /// /run, /var/run) and over parents of the kubelet's mounts, which are refused by default:
    /// a read-only mount there replaces the agent image's own programs or configuration.
    #[arg(long)]
    allow_system_mount_paths: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImageVolumesArg {
    Detect,
    Enabled,
    Disabled,
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
        Command::Run(args) => run_controller(args),
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

fn run_controller(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let config = Config {
        init_image: args.init_image,
        ca_files: args.ca_file,
        image_volumes: match args.image_volumes {
            ImageVolumesArg::Detect => ImageVolumes::Detect,
            ImageVolumesArg::Enabled => ImageVolumes::Enabled,
            ImageVolumesArg::Disabled => ImageVolumes::Disabled,
        },
        probe_interval: std::time::Duration::from_secs(args.probe_interval.max(1)),
        namespace: args.namespace,
        metrics_addr: Some(args.metrics_addr),
        concurrency: args.concurrency.max(1),
        leader_election: args.leader_elect.then(runtime::leader::Timings::default),
        identity: None,
        default_service_account: args.default_service_account,
        allow_system_mount_paths: args.allow_system_mount_paths,
        plan_grace: runtime::PLAN_GRACE,
        webhook: args.webhook_cert.zip(args.webhook_key).map(|(cert, key)| {
            runtime::WebhookServing {
                addr: args.webhook_addr,
                tls: skillport_operator::webhook::TlsFiles { cert, key },
            }
        }),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG, ~/.kube/config or in-cluster)")?;
        runtime::run(client, config, shutdown_signal()).await
    })
}

/// SIGTERM (the kubelet stopping the Pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing the reconciles under way");
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
    options.ca_bundle = runtime::ca_bundle(&args.ca_file)?;
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

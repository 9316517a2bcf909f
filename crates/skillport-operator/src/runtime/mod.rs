//! The operator process (`skillport-operator run`), wiring its parts as siblings: one watch of
//! SkillSets into one store, trimmed to what reconcile and the webhook read, shared by the
//! controller ([`crate::controller`], on the leader only) and the admission webhook
//! ([`crate::webhook`], on every replica); the metrics and probe server; leader election
//! ([`leader`]). Neither the controller nor the webhook knows of the other.

pub mod leader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tokio::sync::broadcast;

use crate::api::SkillSet;
use crate::controller::{self, Context, ImageVolumes, Settings, metrics};
use crate::translate::Options;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The image with the static `skillport` binary (fetch, verify).
    pub init_image: String,
    /// CA certificates (PEM files) for registries with a private CA: used to resolve, and
    /// handed to the fetch init container.
    pub ca_files: Vec<PathBuf>,
    pub image_volumes: ImageVolumes,
    /// How often the API server is asked again whether it serves image volumes.
    pub probe_interval: Duration,
    /// The operator's own namespace (the dry-run probe Pod is made there).
    pub namespace: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// SkillSets reconciled at once.
    pub concurrency: u16,
    /// Lead through the Lease `skillport-operator` in [`Config::namespace`] (with these timings),
    /// or run without one.
    pub leader_election: Option<leader::Timings>,
    /// This replica's name in the Lease. [default: POD_NAME, else `<hostname>-<pid>`]
    pub identity: Option<String>,
    /// Serve the admission webhook (every replica, leader or not): where, and with which
    /// certificate.
    pub webhook: Option<WebhookServing>,
    /// Let skills be mounted under system folders (`/usr`, `/etc`, `/run`, …).
    pub allow_system_mount_paths: bool,
    /// The ServiceAccount (of the SkillSet's own namespace) the operator acts as for a SkillSet
    /// that names none in `spec.serviceAccountName` ([`crate::tenant`]).
    pub default_service_account: String,
    /// How long a plan ConfigMap out of use is kept before it is deleted. [default: 10 min]
    pub plan_grace: Duration,
}

/// [`Config::plan_grace`] unless told otherwise: far longer than a Pod takes from admission to
/// being listed.
pub const PLAN_GRACE: Duration = Duration::from_secs(600);

/// Where the admission webhook listens, and its certificate and key files.
#[derive(Debug, Clone)]
pub struct WebhookServing {
    pub addr: SocketAddr,
    pub tls: crate::webhook::TlsFiles,
}

/// The Lease replicas elect a leader with.
pub const LEASE: &str = "skillport-operator";

/// Reads the CA files into one PEM bundle for the plan ConfigMap (`run`, and `render` offline).
pub fn ca_bundle(paths: &[PathBuf]) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    if paths.is_empty() {
        return Ok(None);
    }
    let mut bundle = String::new();
    for path in paths {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading the CA file {}", path.display()))?;
        bundle.push_str(pem.trim_end());
        bundle.push('\n');
    }
    Ok(Some(bundle))
}

/// Changed SkillSets kept for a listener that has not read them yet; one that falls further
/// behind reconciles every SkillSet again.
const CHANGES_BUFFER: usize = 1024;

/// Runs the operator until `shutdown` resolves, then finishes the reconciles under way.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let mut options = Options::new(&config.init_image);
    options.ca_bundle = ca_bundle(&config.ca_files)?;
    options.allow_system_mount_paths = config.allow_system_mount_paths;
    let settings = Settings {
        ca_files: config.ca_files.clone(),
        image_volumes: config.image_volumes,
        probe_interval: config.probe_interval,
        namespace: config.namespace.clone(),
        default_service_account: config.default_service_account.clone(),
        concurrency: config.concurrency,
        plan_grace: config.plan_grace,
    };
    let ctx = Arc::new(Context::new(&client, &settings, options.clone()));
    let metrics = ctx.metrics();
    let (skill_sets, changes, watch) = skill_set_store(&client);

    // One shutdown signal for every part: the caller's, or losing the Lease.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
    }
    let server = config.metrics_addr.map(|addr| {
        let metrics = metrics.clone();
        let stopped = until_stopped();
        tokio::spawn(async move {
            if let Err(err) = metrics::serve(addr, metrics, stopped).await {
                tracing::error!(%addr, error = %err, "the metrics server stopped");
            }
        })
    });

    // The webhook answers on every replica: the API server calls whichever the Service picks.
    let webhook = match &config.webhook {
        None => None,
        Some(serving) => Some(
            start_webhook(
                &client,
                &options,
                &config.default_service_account,
                skill_sets.clone(),
                serving,
                until_stopped(),
                stop.clone(),
            )
            .await?,
        ),
    };

    let election = config.leader_election.map(|timings| {
        Arc::new(leader::LeaderElection::new(
            Api::namespaced(client.clone(), &config.namespace),
            LEASE,
            identity(&config),
            timings,
        ))
    });
    let mut lost = false;
    if let Some(election) = &election {
        // A standby replica is ready: it serves its endpoints and waits.
        metrics.ready.store(true, Ordering::SeqCst);
        tokio::select! {
            () = election.acquire() => {}
            () = until_stopped() => {
                finish_server(webhook).await;
                finish_server(server).await;
                watch.abort();
                return Ok(());
            }
        }
        metrics.ready.store(false, Ordering::SeqCst);
        let election = election.clone();
        let stop = stop.clone();
        let holding = tokio::spawn(async move {
            election.hold().await;
            let _ = stop.send(true);
        });
        lead(&client, ctx, &changes, skill_sets, until_stopped()).await;
        lost = holding.is_finished();
        holding.abort();
    } else {
        lead(&client, ctx, &changes, skill_sets, until_stopped()).await;
    }
    watch.abort();
    if let Some(election) = &election
        && !lost
    {
        election.release().await;
    }
    finish_server(webhook).await;
    finish_server(server).await;
    if lost {
        anyhow::bail!("lost the leader Lease {LEASE}; exiting so that a new leader takes over");
    }
    Ok(())
}

/// This replica's name in the Lease: as configured, else POD_NAME, else `<hostname>-<pid>`.
fn identity(config: &Config) -> String {
    config
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
}

/// Binds the webhook's address and checks its certificate (either failing stops `run` at
/// once), then serves the admission endpoints until `shutdown`. Should the server fail later,
/// it stops everything (`stop`): a replica that cannot answer admission must not look alive.
async fn start_webhook(
    client: &Client,
    options: &Options,
    default_service_account: &str,
    skill_sets: Store<SkillSet>,
    serving: &WebhookServing,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    serving.tls.check()?;
    let tcp = tokio::net::TcpListener::bind(serving.addr)
        .await
        .with_context(|| format!("binding the webhook address {}", serving.addr))?;
    let (policies, policy_watch) = crate::webhook::admission::PolicyStores::start(client);
    let admission = crate::webhook::admission::Admission::new(
        client.clone(),
        options.clone(),
        default_service_account,
        skill_sets,
    )
    .with_policies(policies);
    let router = crate::webhook::limited(crate::webhook::admission::router(admission));
    let files = serving.tls.clone();
    Ok(tokio::spawn(async move {
        if let Err(err) = crate::webhook::serve(tcp, files, router, shutdown).await {
            tracing::error!(error = %format!("{err:#}"), "the webhook server stopped; stopping");
            let _ = stop.send(true);
        }
        policy_watch.abort();
    }))
}

/// Waits for a server task (told to stop) to end.
async fn finish_server(server: Option<tokio::task::JoinHandle<()>>) {
    if let Some(server) = server {
        let _ = server.await;
    }
}

/// The one watch of SkillSets (its task runs until aborted), into a store of trimmed objects,
/// and each changed SkillSet sent to whoever listens (the controller, once this replica leads).
///
/// Not kube's shared reflector (`reflect_shared` and its `ReflectHandle`): a handle told of an
/// object that has already left the store (deleted between the event and the read) returns
/// `Pending` without a waker, and a subscriber that stalls so stalls the watch, the webhook's
/// store with it. A broadcast never waits: a listener that lags gets the whole store again.
fn skill_set_store(
    client: &Client,
) -> (
    Store<SkillSet>,
    broadcast::Sender<Arc<SkillSet>>,
    tokio::task::JoinHandle<()>,
) {
    let (store, writer) = reflector::store();
    let (changes, _) = broadcast::channel(CHANGES_BUFFER);
    let stream = watcher(
        Api::<SkillSet>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(trim)
    .reflect(writer)
    .applied_objects();
    let sender = changes.clone();
    let task = tokio::spawn(async move {
        futures_util::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                // No listener (a standby replica) is no error.
                Ok(skill_set) => drop(sender.send(Arc::new(skill_set))),
                Err(err) => tracing::warn!(error = %err, "watching SkillSets"),
            }
        }
    });
    (store, changes, task)
}

/// What neither reconcile nor the webhook reads, left out of the store: the field managers'
/// records (often larger than the spec) and kubectl's copy of the last applied object.
fn trim(skill_set: &mut SkillSet) {
    skill_set.managed_fields_mut().clear();
    skill_set
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Runs the controller until `shutdown`: every SkillSet of the store once (what changed while
/// this replica did not lead included), then each that changes.
async fn lead(
    client: &Client,
    ctx: Arc<Context>,
    changes: &broadcast::Sender<Arc<SkillSet>>,
    skill_sets: Store<SkillSet>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let metrics = ctx.metrics();
    // Listening before the store is read: nothing changed in between is missed.
    let listener = changes.subscribe();
    let mut shutdown = Box::pin(shutdown);
    // Ready once SkillSets were listed: the API server answers and RBAC lets us.
    tokio::select! {
        ready = skill_sets.wait_until_ready() => if ready.is_err() { return },
        () = &mut shutdown => return,
    }
    metrics.ready.store(true, Ordering::SeqCst);
    tracing::info!("SkillSets listed; reconciling");
    let store = skill_sets.clone();
    let updates = futures_util::stream::unfold(listener, move |mut listener| {
        let store = store.clone();
        async move {
            let items = match listener.recv().await {
                Ok(skill_set) => vec![skill_set],
                // Changes were missed: every SkillSet again.
                Err(broadcast::error::RecvError::Lagged(_)) => store.state(),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((futures_util::stream::iter(items), listener))
        }
    })
    .flatten();
    let trigger = futures_util::stream::iter(skill_sets.state()).chain(updates);
    controller::run(client, ctx, trigger, skill_sets, shutdown).await;
}

//! The controller (`skillport-operator run`): watches SkillSets and the Deployments and
//! StatefulSets they name, and for each SkillSet resolves → translates → applies → reports
//! ([`reconcile`]). Kubernetes I/O lives in `reconcile`; resolving (registry, git) in
//! [`resolve`]; the API server's capabilities in [`capability`].

pub mod capability;
mod contention;
mod decide;
mod events;
pub mod metrics;
mod plans;
mod reconcile;
pub mod resolve;
mod status;
mod trust;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::Mutex;

pub use capability::ImageVolumes;
pub use reconcile::FINALIZER;

use crate::api::{ImageVolumeFailure, SkillSet, SkillSetSpec, SkillSetStatus, WorkloadKind};
use crate::policy::{ClusterSkillPolicy, SkillPolicy};
use crate::translate::Options;
use capability::Capability;
use metrics::Metrics;
use resolve::Resolver;

/// What the controller is started with ([`crate::runtime::Config`] holds it for the process).
#[derive(Debug, Clone)]
pub struct Settings {
    /// CA certificates (PEM files) for registries with a private CA.
    pub ca_files: Vec<PathBuf>,
    pub image_volumes: ImageVolumes,
    /// How often the API server is asked again whether it serves image volumes.
    pub probe_interval: Duration,
    /// The operator's own namespace (the dry-run probe Pod is made there).
    pub namespace: String,
    /// The ServiceAccount (of the SkillSet's own namespace) the operator acts as for a SkillSet
    /// that names none in `spec.serviceAccountName` ([`crate::tenant`]).
    pub default_service_account: String,
    /// SkillSets reconciled at once.
    pub concurrency: u16,
    /// How long a plan ConfigMap out of use is kept before it is deleted.
    pub plan_grace: Duration,
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the workload: {0}")]
    Workload(String),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The kind of error, for the `skillport_reconcile_errors` metric: `Api<code>` for an API
    /// server's refusal, `Client` for one that did not reach it, `Workload`, `Finalizer`.
    fn kind(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(status)) => format!("Api{}", status.code),
            Error::Kube(_) => "Client".to_owned(),
            Error::Workload(_) => "Workload".to_owned(),
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(err)
                | kube::runtime::finalizer::Error::CleanupFailed(err) => err.kind(),
                _ => "Finalizer".to_owned(),
            },
        }
    }
}

/// A settled SkillSet's generation and a hash of its status ([`Context::settled`]).
type Settled = (Option<i64>, [u8; 8]);

/// A status we wrote: the resourceVersion of the object it was computed from, and the status.
type Written = (Option<String>, SkillSetStatus);

/// What every reconcile shares.
pub struct Context {
    /// The operator's own client: watches, SkillSet finalizers and status, Events, the probe.
    /// Whatever is done on a SkillSet's behalf goes through [`Context::tenant`] instead.
    client: Client,
    default_service_account: String,
    concurrency: u16,
    plan_grace: Duration,
    /// The operator's own namespace: where ClusterSkillPolicies' key material is read.
    namespace: String,
    options: Options,
    resolver: Resolver,
    capability: Capability,
    recorder: events::Events,
    metrics: Arc<Metrics>,
    resolutions: Mutex<HashMap<ObjectRef<SkillSet>, reconcile::CachedResolution>>,
    /// SkillSets whose image volumes failed (dropped by the API server, or not mountable on a
    /// node), until the watch shows it in `status.imageVolumeFailure`, which is what counts from
    /// then on (across restarts). A std Mutex: the Event watch's mapper is
    /// sync.
    image_volume_failures: std::sync::Mutex<HashMap<ObjectRef<SkillSet>, ImageVolumeFailure>>,
    /// The status last written per SkillSet, and the resourceVersion of the object it was
    /// computed from: until the watch cache shows our write, a reconcile starts from this
    /// rather than the stale cached status (which would write and announce it all again).
    written: std::sync::Mutex<HashMap<ObjectRef<SkillSet>, Written>>,
    /// Failures in a row, per SkillSet, for backoff.
    failures: Mutex<HashMap<ObjectRef<SkillSet>, u32>>,
    /// The resourceVersion of the workload each SkillSet last reconciled against (as read, or
    /// as our apply stored it): a watch event of the workload at that version is our own write
    /// coming back, and wakes nobody. A std Mutex: the watch's mapper is sync.
    seen_workloads: std::sync::Mutex<HashMap<ObjectRef<SkillSet>, String>>,
    /// Counts changes to skill policies: a resolution made under another count is stale (the
    /// policies may refuse what it pinned, or accept what it could not).
    policy_epoch: std::sync::atomic::AtomicU64,
    /// SkillSets whose last reconcile ended Ready and wrote the status they hold now: the
    /// generation and a hash of that status. Our own status write coming back then needs no
    /// reconcile; anything else (a spec change, a workload event, a failure, the resolution
    /// falling due) still gets one.
    settled: std::sync::Mutex<HashMap<ObjectRef<SkillSet>, Settled>>,
}

impl Context {
    /// Counts one more failure in a row for `key`; returns the count ([`decide::backoff`]).
    async fn failed_again(&self, key: &ObjectRef<SkillSet>) -> u32 {
        let mut failures = self.failures.lock().await;
        let count = failures.entry(key.clone()).or_default();
        *count = count.saturating_add(1);
        *count
    }
}

impl Context {
    /// What reconciles share, for a controller with `settings` and translate `options`.
    pub fn new(client: &Client, settings: &Settings, options: Options) -> Context {
        Context {
            client: client.clone(),
            default_service_account: settings.default_service_account.clone(),
            concurrency: settings.concurrency,
            plan_grace: settings.plan_grace,
            namespace: settings.namespace.clone(),
            options,
            resolver: Resolver::new(settings.ca_files.clone()),
            capability: Capability::new(
                Api::<Pod>::namespaced(client.clone(), &settings.namespace),
                settings.image_volumes,
                settings.probe_interval,
            ),
            recorder: events::Events::new(
                client.clone(),
                "skillport-operator",
                std::env::var("POD_NAME").ok(),
            ),
            metrics: Arc::new(Metrics::default()),
            resolutions: Mutex::new(HashMap::new()),
            image_volume_failures: std::sync::Mutex::new(HashMap::new()),
            written: std::sync::Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            seen_workloads: std::sync::Mutex::new(HashMap::new()),
            settled: std::sync::Mutex::new(HashMap::new()),
            policy_epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn policy_epoch(&self) -> u64 {
        self.policy_epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A skill policy changed: every resolution is stale.
    fn policy_changed(&self) {
        self.policy_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A client acting as a SkillSet's ServiceAccount, in its namespace.
struct Tenant<'a> {
    client: Client,
    namespace: String,
    account: &'a str,
}

impl Tenant<'_> {
    /// A refusal by RBAC, said with what to grant.
    fn forbidden(&self, status: &str) -> String {
        format!(
            "{status}; {}",
            crate::tenant::grant_hint(&self.namespace, self.account)
        )
    }
}

impl Context {
    /// The client that acts for `skill_set` (its namespace's ServiceAccount), and the account's
    /// name.
    fn tenant<'a>(&'a self, skill_set: &'a SkillSet) -> Tenant<'a> {
        let namespace = skill_set.namespace().unwrap_or_default();
        let account =
            crate::tenant::service_account(&skill_set.spec, &self.default_service_account);
        Tenant {
            client: crate::tenant::client(&self.client, &namespace, account),
            namespace,
            account,
        }
    }

    /// The SkillSet's status as it stands: the cached one, or ours when the cache still shows
    /// the object from before our last status write.
    fn known_status(&self, skill_set: &SkillSet) -> SkillSetStatus {
        let mut written = self.written.lock().expect("not poisoned");
        let key = ObjectRef::from_obj(skill_set);
        match written.get(&key) {
            Some((version, status)) if *version == skill_set.metadata.resource_version => {
                status.clone()
            }
            // The cache shows a newer object (ours, or a change since): the copy is needed no
            // more, and is not held for every SkillSet at rest.
            Some(_) => {
                written.remove(&key);
                skill_set.status.clone().unwrap_or_default()
            }
            None => skill_set.status.clone().unwrap_or_default(),
        }
    }

    fn wrote_status(&self, skill_set: &SkillSet, status: SkillSetStatus) {
        self.written.lock().expect("not poisoned").insert(
            ObjectRef::from_obj(skill_set),
            (skill_set.metadata.resource_version.clone(), status),
        );
    }

    fn image_volume_failure(&self, key: &ObjectRef<SkillSet>) -> Option<ImageVolumeFailure> {
        self.image_volume_failures
            .lock()
            .expect("not poisoned")
            .get(key)
            .cloned()
    }

    fn record_image_volume_failure(&self, key: ObjectRef<SkillSet>, failure: ImageVolumeFailure) {
        self.image_volume_failures
            .lock()
            .expect("not poisoned")
            .insert(key, failure);
    }

    /// Whether `skill_set` is as its last reconcile left it, Ready ([`Context::settled`]).
    fn is_settled(&self, skill_set: &SkillSet) -> bool {
        let key = ObjectRef::from_obj(skill_set);
        let status = skill_set.status.clone().unwrap_or_default();
        self.settled
            .lock()
            .expect("not poisoned")
            .get(&key)
            .is_some_and(|(generation, hash)| {
                *generation == skill_set.metadata.generation && *hash == status_hash(&status)
            })
    }

    /// Records (`Some`) or forgets (`None`) that `key` is settled with `status`.
    fn settle(&self, key: ObjectRef<SkillSet>, settled: Option<(Option<i64>, &SkillSetStatus)>) {
        let mut map = self.settled.lock().expect("not poisoned");
        match settled {
            Some((generation, status)) => map.insert(key, (generation, status_hash(status))),
            None => map.remove(&key),
        };
    }

    /// SkillSet `key` reconciled against its workload at `version`.
    fn saw_workload(&self, key: ObjectRef<SkillSet>, version: Option<String>) {
        let mut seen = self.seen_workloads.lock().expect("not poisoned");
        match version {
            Some(version) => seen.insert(key, version),
            None => seen.remove(&key),
        };
    }

    /// The failure is in the SkillSet's stored status now: that is where it is read from.
    fn image_volume_failure_written(&self, key: &ObjectRef<SkillSet>) {
        self.image_volume_failures
            .lock()
            .expect("not poisoned")
            .remove(key);
    }
}

impl Context {
    /// The counters `/metrics` serves and the readiness `/readyz` reports.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

/// The controller loop, until `shutdown`; then the reconciles under way finish. `store` holds
/// the SkillSets (shared with the webhook, [`crate::runtime`]); `trigger` yields every SkillSet
/// once and then each one that changes. The workloads are watched by their metadata only: a
/// change of one only says which SkillSets to look at again.
pub async fn run(
    client: &Client,
    ctx: Arc<Context>,
    trigger: impl futures_util::Stream<Item = Arc<SkillSet>> + Send + 'static,
    store: Store<SkillSet>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let concurrency = ctx.concurrency;
    let controller = Controller::for_shared_stream(trigger, store.clone());
    let events_store = store.clone();
    let events_ctx = ctx.clone();
    let deployments_store = store.clone();
    let stateful_sets_store = store;
    let (deployments_ctx, stateful_sets_ctx) = (ctx.clone(), ctx.clone());
    let deployments = Api::<PartialObjectMeta<Deployment>>::all(client.clone());
    let stateful_sets = Api::<PartialObjectMeta<StatefulSet>>::all(client.clone());
    let config = || watcher::Config::default().any_semantic();
    // A skill policy that changes makes every resolution stale, and every SkillSet is looked
    // at again (verdicts of unchanged policies are cached, so that costs no signature reads).
    let policy_ctx = ctx.clone();
    let cluster_policies = watcher(
        Api::<PartialObjectMeta<ClusterSkillPolicy>>::all(client.clone()),
        config(),
    )
    .default_backoff()
    .touched_objects()
    .map(|event| event.is_ok());
    let namespace_policies = watcher(
        Api::<PartialObjectMeta<SkillPolicy>>::all(client.clone()),
        config(),
    )
    .default_backoff()
    .touched_objects()
    .map(|event| event.is_ok());
    let policy_changes = futures_util::stream::select(cluster_policies, namespace_policies)
        .filter_map(move |changed| {
            let ctx = policy_ctx.clone();
            async move { changed.then(|| ctx.policy_changed()) }
        });
    controller
        .reconcile_all_on(policy_changes)
        .watches_stream(
            watcher(deployments, config())
                .default_backoff()
                .touched_objects(),
            move |deployment| {
                naming(
                    &deployments_store,
                    &deployments_ctx,
                    WorkloadKind::Deployment,
                    &deployment,
                )
            },
        )
        .watches_stream(
            watcher(stateful_sets, config())
                .default_backoff()
                .touched_objects(),
            move |set| {
                naming(
                    &stateful_sets_store,
                    &stateful_sets_ctx,
                    WorkloadKind::StatefulSet,
                    &set,
                )
            },
        )
        // A node that cannot mount image volumes says so only in a FailedMount Event on the Pod.
        .watches(
            Api::<CoreEvent>::all(client.clone()),
            watcher::Config::default().fields("reason=FailedMount,involvedObject.kind=Pod"),
            move |event| failed_mount(&events_store, &events_ctx, &event),
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile");
            }
        })
        .await;
}

/// A short hash of a status (for [`Context::settled`]).
fn status_hash(status: &SkillSetStatus) -> [u8; 8] {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(serde_json::to_vec(status).expect("a status serialises"));
    digest[..8].try_into().expect("8 bytes")
}

/// The SkillSets that name (or last attached to) a workload, but those that last reconciled
/// against this very version of it (our own apply coming back).
fn naming<K: kube::Resource>(
    store: &Store<SkillSet>,
    ctx: &Context,
    kind: WorkloadKind,
    workload: &K,
) -> Vec<ObjectRef<SkillSet>> {
    let namespace = workload.namespace();
    let name = workload.name_any();
    let version = workload.meta().resource_version.as_deref();
    let seen = ctx.seen_workloads.lock().expect("not poisoned");
    store
        .state()
        .iter()
        .filter(|skill_set| skill_set.namespace() == namespace)
        .filter(|skill_set| {
            let named = skill_set.spec.workload_ref.as_ref();
            let attached = skill_set.status.as_ref().and_then(|s| s.workload.as_ref());
            [named, attached]
                .into_iter()
                .flatten()
                .any(|w| w.kind == kind && w.name == name)
        })
        .map(|skill_set| ObjectRef::from_obj(skill_set.as_ref()))
        .filter(|key| version.is_none() || seen.get(key).map(String::as_str) != version)
        .inspect(|key| ctx.settle(key.clone(), None))
        .collect()
}

/// A FailedMount on a Pod of a workload a SkillSet attached image volumes to, saying the node
/// cannot mount them (a kubelet without the ImageVolume gate: "no volume plugin matched"; a
/// runtime that cannot pull into a volume): recorded, so that the SkillSet's next reconcile
/// (which this returns) falls back to the init container in Auto, or reports it.
fn failed_mount(
    store: &Store<SkillSet>,
    ctx: &Context,
    event: &CoreEvent,
) -> Vec<ObjectRef<SkillSet>> {
    let message = event.message.clone().unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    let node_cannot = lower.contains("no volume plugin matched")
        || (lower.contains("image volume") && lower.contains("not supported"));
    if !node_cannot {
        return Vec::new();
    }
    let pod = event.involved_object.name.clone().unwrap_or_default();
    let namespace = event.involved_object.namespace.clone();
    let node = event
        .source
        .as_ref()
        .and_then(|source| source.host.clone())
        .or_else(|| event.reporting_instance.clone())
        .unwrap_or_else(|| "?".to_owned());
    let mut affected = Vec::new();
    for skill_set in store.state() {
        let Some(status) = &skill_set.status else {
            continue;
        };
        // A Pod of the workload the SkillSet is attached to; or, for a SkillSet whose Pods get
        // their skills from the webhook (no workload), any Pod of the namespace: the Event
        // names the Pod but carries no labels, and such Pods are named by their own
        // controllers. (Two such SkillSets in a namespace sharing a skill name both fall back.)
        let pod_is_theirs = match (&status.workload, &skill_set.spec.workload_ref) {
            (Some(workload), _) => pod.starts_with(&format!("{}-", workload.name)),
            (None, None) => true,
            (None, Some(_)) => false,
        };
        let ours = skill_set.namespace() == namespace
            && status.delivery == Some(crate::api::Delivery::ImageVolume)
            && pod_is_theirs
            && {
                let names = crate::translate::names::PodNames::of(&skill_set.spec);
                skill_set
                    .spec
                    .skills
                    .iter()
                    .any(|skill| message.contains(&names.skill_volume(&skill.name)))
            };
        if ours {
            let key = ObjectRef::from_obj(skill_set.as_ref());
            tracing::warn!(skill_set = %key, %pod, %node, "image volumes cannot be mounted on the node");
            ctx.settle(key.clone(), None);
            ctx.record_image_volume_failure(
                key.clone(),
                ImageVolumeFailure {
                    reason: crate::api::reason::IMAGE_VOLUME_MOUNT_FAILED.to_owned(),
                    message: format!(
                        "node {node} cannot mount the image volumes of Pod {pod}: {}",
                        message.chars().take(300).collect::<String>()
                    ),
                    node: Some(node.clone()),
                },
            );
            affected.push(key);
        }
    }
    affected
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run asks for
fn error_policy(skill_set: Arc<SkillSet>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(
        skill_set = %ObjectRef::from_obj(skill_set.as_ref()),
        error = %error,
        "reconcile failed; retrying"
    );
    ctx.metrics.error(&error.kind());
    // The failure count is bumped without waiting on the lock holder (this is sync).
    let count = ctx.failures.try_lock().map_or(1, |mut failures| {
        let count = failures
            .entry(ObjectRef::from_obj(skill_set.as_ref()))
            .or_default();
        *count = count.saturating_add(1);
        *count
    });
    // An API call that failed may work next time: the transient schedule.
    Action::requeue(decide::backoff(count, true))
}

/// `spec.updateInterval` as a duration (the CRD checks its form and the 10 s minimum).
pub fn update_interval(spec: &SkillSetSpec) -> Duration {
    parse_duration(&spec.update_interval)
        .unwrap_or(Duration::from_secs(600))
        .max(Duration::from_secs(10))
}

/// How long a SkillSet's resolution holds: its update interval and its own phase, up to a
/// quarter more, the same on every reconcile (from a hash of its uid). SkillSets that share a
/// tag then re-resolve — and roll their workloads when the tag moved — spread over a quarter of
/// the interval rather than all in one moment.
pub fn resolution_lifetime(uid: &str, interval: Duration) -> Duration {
    use sha2::{Digest as _, Sha256};
    let hash = Sha256::digest(uid.as_bytes());
    let hash = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
    let quarter = u64::try_from((interval / 4).as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    interval + Duration::from_millis(hash % quarter)
}

/// A Go-style duration of `ms`, `s`, `m` and `h` parts (`1h30m`, `1.5s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += number * unit;
        rest = &rest[len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_hold_for_the_interval_and_a_stable_phase_spread_over_a_quarter() {
        let interval = Duration::from_secs(600);
        let lifetimes: Vec<Duration> = (0..200)
            .map(|i| resolution_lifetime(&format!("uid-{i}"), interval))
            .collect();
        assert!(
            lifetimes
                .iter()
                .all(|l| *l >= interval && *l < interval + interval / 4)
        );
        assert_eq!(
            lifetimes[7],
            resolution_lifetime("uid-7", interval),
            "stable"
        );
        // Spread: every 15 s slice of the 150 s window holds some of the 200.
        let mut slices = [0u32; 10];
        for lifetime in &lifetimes {
            let slice = lifetime.saturating_sub(interval).as_secs() / 15;
            slices[usize::try_from(slice).unwrap()] += 1;
        }
        assert!(slices.iter().all(|n| *n > 5), "{slices:?}");
    }

    #[test]
    fn durations_parse_like_the_crd_accepts_them() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10d"), None);
        assert_eq!(parse_duration(""), None);
    }
}

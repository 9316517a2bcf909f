//! The admission endpoints the webhook serves (issue 13):
//!
//! - [`MUTATE_PODS`]: a Pod created with the label `skillport.dev/skillset: <name>` gets that
//!   SkillSet's skills as a JSON Patch ([`crate::inject`]: the same translate the `workloadRef`
//!   attach applies), with the digests and delivery in the SkillSet's status. A SkillSet that is
//!   missing admits the Pod unchanged with a warning; one that is not ready does the same, or
//!   denies the Pod when it says `failurePolicy: Fail`.
//! - [`VALIDATE_SKILL_SETS`]: SkillSet create and update, checked against what the CRD cannot
//!   see ([`crate::validate`]): the workload's pod template, the namespace's other SkillSets, its
//!   Secrets.
//!
//! Each request is read ([`read`]), its facts looked up (the only I/O here), and answered by a
//! pure decision ([`decide_pod`], [`decide_skill_set`]). A body that is not an
//! `admission.k8s.io/v1` AdmissionReview is answered 400 with a review saying what is wrong; a
//! review of the wrong kind is denied, naming the kind and the endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use kube::api::PostParams;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{DynamicObject, Status};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{
    FailurePolicy, ResolvedSkill, SkillSet, SkillSetSpec, WorkloadKind, WorkloadRef, condition,
};
use crate::inject::{SKILLSET_LABEL, inject};
use crate::policy::{
    ClusterSkillPolicy, ClusterSkillPolicySpec, SkillPolicy, git_unmet_at_admission,
    unmet_at_admission,
};
use crate::translate::{Mode, Options};
use crate::validate::{Denial, Other, Verdict, validate};
use crate::webhook::MAX_BODY;

/// Where Pods are sent for injection.
pub const MUTATE_PODS: &str = "/mutate-pods";
/// Where SkillSets are sent for validation.
pub const VALIDATE_SKILL_SETS: &str = "/validate-skillsets";

/// What the endpoints share: the API client, translate's options (the operator's), and a
/// watch-fed cache of SkillSets (a Pod's SkillSet is read from it; from the API server when the
/// cache does not have it ready yet).
#[derive(Clone)]
pub struct Admission {
    /// The skill policies, when watched: a Pod never gets a skill the enforcing ones would
    /// refuse (a policy made since the SkillSet was resolved).
    policies: Option<PolicyStores>,
    /// The operator's own client: the SkillSet cache, the namespace's SkillSets, access reviews.
    /// Workloads and Secrets are read as the SkillSet's ServiceAccount ([`crate::tenant`]).
    client: Client,
    default_service_account: Arc<str>,
    options: Arc<Options>,
    skill_sets: Store<SkillSet>,
    /// Request bodies being read and answered at once, in [`BUDGET_UNIT`]s: one of the largest
    /// allowed size, or dozens of the usual few kilobytes. A body is read only within budget, so
    /// hostile ones cannot make the server hold more than about [`MAX_BODY`] of them (and what
    /// parsing makes of it) at a time.
    budget: Arc<Semaphore>,
}

/// The skill policies, kept current by watches.
#[derive(Clone)]
pub struct PolicyStores {
    cluster: Store<ClusterSkillPolicy>,
    local: Store<SkillPolicy>,
    /// Both stores have listed once: until then no skill is injected (an empty store would
    /// pass everything).
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl PolicyStores {
    /// Watches both policy kinds into stores; the task runs until aborted. Without the
    /// policy CRDs the watches retry with backoff and the stores stay empty.
    pub fn start(client: &Client) -> (PolicyStores, tokio::task::JoinHandle<()>) {
        let (cluster, cluster_writer) = reflector::store();
        let (local, local_writer) = reflector::store();
        let clusters = watcher(
            Api::<ClusterSkillPolicy>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(cluster_writer)
        .applied_objects()
        .map(|event| event.map(|_| ()));
        let locals = watcher(
            Api::<SkillPolicy>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(local_writer)
        .applied_objects()
        .map(|event| event.map(|_| ()));
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (listed, stores) = (ready.clone(), (cluster.clone(), local.clone()));
        // One task: the watches, and noting when both kinds were listed once.
        let task = tokio::spawn(async move {
            let watch = async {
                let both = futures_util::stream::select(clusters, locals);
                futures_util::pin_mut!(both);
                while let Some(event) = both.next().await {
                    if let Err(err) = event {
                        tracing::debug!(error = %err, "webhook: watching skill policies");
                    }
                }
            };
            let readiness = async {
                if stores.0.wait_until_ready().await.is_ok()
                    && stores.1.wait_until_ready().await.is_ok()
                {
                    listed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            };
            tokio::join!(watch, readiness);
        });
        (
            PolicyStores {
                cluster,
                local,
                ready,
            },
            task,
        )
    }

    /// The policies that apply in `namespace`, as `(title, spec)`; `None` until both kinds
    /// were listed (fail closed: the webhook then gives no Pod any skill).
    fn applying(&self, namespace: &str) -> Option<Vec<(String, ClusterSkillPolicySpec)>> {
        if !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let mut all: Vec<(String, ClusterSkillPolicySpec)> = self
            .cluster
            .state()
            .iter()
            .map(|p| {
                (
                    format!("ClusterSkillPolicy {:?}", p.name_any()),
                    p.spec.clone(),
                )
            })
            .collect();
        all.extend(
            self.local
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace))
                .map(|p| {
                    (
                        format!("SkillPolicy \"{namespace}/{}\"", p.name_any()),
                        ClusterSkillPolicySpec::from(&p.spec),
                    )
                }),
        );
        Some(all)
    }
}

/// The first skill of `skill_set` the enforcing `policies` would refuse, and why.
fn unverified(
    skill_set: &SkillSet,
    resolved: &[ResolvedSkill],
    policies: &[(String, ClusterSkillPolicySpec)],
) -> Option<String> {
    let policies: Vec<(String, &ClusterSkillPolicySpec)> = policies
        .iter()
        .map(|(title, spec)| (title.clone(), spec))
        .collect();
    for skill in resolved {
        let Some(source) = skill_set.spec.skills.iter().find(|s| s.name == skill.name) else {
            continue;
        };
        let why = match source.image.as_deref() {
            Some(image) => match image.parse::<skillport_oci::Reference>() {
                Ok(image) => unmet_at_admission(&policies, &image, &skill.signers),
                Err(_) => Some(format!("its image {image:?} is not a reference")),
            },
            None => git_unmet_at_admission(&policies),
        };
        if let Some(why) = why {
            return Some(format!("has skill {:?} unverified: {why}", skill.name));
        }
    }
    None
}

/// The unit of [`Admission::budget`].
const BUDGET_UNIT: usize = 64 << 10;
/// The longest a request body may take to arrive: under the webhook configurations'
/// `timeoutSeconds` (5), so that a trickle is cut before the API server gives up on the review.
const BODY_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest pause between two pieces of a request body.
const BODY_IDLE: Duration = Duration::from_secs(1);
/// The slowest a request body may arrive, in bytes per second on average (after a second):
/// the API server sends a review in one go, at loopback or cluster-network speed.
const BODY_MIN_RATE: u64 = 1 << 20;

impl Admission {
    /// The endpoints' state: SkillSets are read from `skill_sets`, a store someone else keeps
    /// current ([`crate::runtime`] shares the controller's).
    pub fn new(
        client: Client,
        options: Options,
        default_service_account: &str,
        skill_sets: Store<SkillSet>,
    ) -> Admission {
        Admission {
            policies: None,
            client,
            default_service_account: default_service_account.into(),
            options: Arc::new(options),
            skill_sets,
            budget: Arc::new(Semaphore::new(MAX_BODY.div_ceil(BUDGET_UNIT))),
        }
    }

    /// The same, never injecting a skill the enforcing policies in `policies` would refuse.
    #[must_use]
    pub fn with_policies(mut self, policies: PolicyStores) -> Admission {
        self.policies = Some(policies);
        self
    }

    /// [`Admission::new`] with a SkillSet watch of its own, and the task that keeps it current
    /// (it runs until aborted): for a webhook served without the controller (tests, benches).
    pub fn start(
        client: Client,
        options: Options,
        default_service_account: &str,
    ) -> (Admission, tokio::task::JoinHandle<()>) {
        let (store, writer) = reflector::store();
        let stream = watcher(
            Api::<SkillSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .applied_objects();
        let task = tokio::spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(err) = event {
                    tracing::warn!(error = %err, "webhook: watching SkillSets");
                }
            }
        });
        (
            Admission::new(client, options, default_service_account, store),
            task,
        )
    }

    /// The request's body, read within the budget (whose share it holds until dropped): 413
    /// past [`MAX_BODY`]; 408 when it does not arrive within [`BODY_TIMEOUT`], pauses longer
    /// than [`BODY_IDLE`], or comes slower than [`BODY_MIN_RATE`]; 503 when it needs more of
    /// the budget than is free while it holds some. The budget is taken as bytes
    /// arrive, never for what a `Content-Length` only promises: a client that declares 3 MiB
    /// and sends nothing holds none of it.
    async fn receive(
        &self,
        request: Request,
    ) -> Result<(Option<OwnedSemaphorePermit>, Bytes), Box<Response>> {
        let refuse = |status: StatusCode, why: String| Box::new((status, why).into_response());
        let too_large = || {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {MAX_BODY} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY) {
            return Err(too_large());
        }
        let started = tokio::time::Instant::now();
        let deadline = started + BODY_TIMEOUT;
        let late = || {
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time".to_owned(),
            )
        };
        let mut chunks = request.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            let wait = deadline.min(tokio::time::Instant::now() + BODY_IDLE);
            let chunk = match tokio::time::timeout_at(wait, chunks.next()).await {
                Err(_) => return Err(late()),
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read".to_owned(),
                    ));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let length = body.len() + chunk.len();
            if length > MAX_BODY {
                return Err(too_large());
            }
            let needed = length.div_ceil(BUDGET_UNIT);
            let holding = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
            if needed > holding {
                let more = u32::try_from(needed - holding).expect("at most MAX_BODY / BUDGET_UNIT");
                // Only a request holding nothing waits for budget; one holding some never waits
                // for more (two half-read bodies would each wait for the other's share): busy.
                let permit = if holding == 0 {
                    tokio::time::timeout_at(deadline, self.budget.clone().acquire_many_owned(more))
                        .await
                        .map_err(|_| late())?
                        .expect("the budget is never closed")
                } else {
                    self.budget
                        .clone()
                        .try_acquire_many_owned(more)
                        .map_err(|_| {
                            refuse(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "too many request bodies are being read at once; try again"
                                    .to_owned(),
                            )
                        })?
                };
                match &mut held {
                    Some(held) => held.merge(permit),
                    None => held = Some(permit),
                }
            }
            body.extend_from_slice(&chunk);
            // Past a second's grace, the body must come at BODY_MIN_RATE on average: a trickle
            // would hold its share of the budget for the whole BODY_TIMEOUT.
            let after_grace = started.elapsed().saturating_sub(Duration::from_secs(1));
            let arrived = u128::try_from(body.len()).unwrap_or(u128::MAX) * 1000;
            if arrived < u128::from(BODY_MIN_RATE) * after_grace.as_millis() {
                return Err(late());
            }
        }
        Ok((held, Bytes::from(body)))
    }

    /// The SkillSet `namespace/name`: from the cache when it is ready to inject there, else
    /// from the API server (the cache may not have seen the status that made it ready).
    async fn skill_set(&self, namespace: &str, name: &str) -> kube::Result<Option<Arc<SkillSet>>> {
        // The label's value may be empty: it names no SkillSet (and is no name to GET).
        if name.is_empty() {
            return Ok(None);
        }
        let cached = self.skill_sets.get(&ObjectRef::new(name).within(namespace));
        if let Some(found) = &cached
            && injectable(found).is_ok()
        {
            return Ok(cached);
        }
        let api = Api::<SkillSet>::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(found) => Ok(found.map(Arc::new)),
            // The API server did not answer: what the cache knows is better than nothing.
            Err(_) if cached.is_some() => Ok(cached),
            Err(err) => Err(err),
        }
    }

    /// What [`validate`] needs to know about the namespace, and what the requesting `user` may
    /// not do that the SkillSet would have the operator do.
    async fn facts(
        &self,
        namespace: &str,
        name: &str,
        spec: &SkillSetSpec,
        old: Option<&SkillSetSpec>,
        user: &UserInfo,
    ) -> kube::Result<Facts> {
        let forbidden = self.forbidden(namespace, spec, old, user).await?;
        // Read as the SkillSet's ServiceAccount, as the operator will: the answer says no more
        // about the namespace than that account may know.
        let account = crate::tenant::service_account(spec, &self.default_service_account);
        let tenant = crate::tenant::client(&self.client, namespace, account);
        let mut warnings = Vec::new();
        let template = match &spec.workload_ref {
            None => None,
            Some(workload) => {
                let found = match workload.kind {
                    WorkloadKind::Deployment => {
                        Api::<Deployment>::namespaced(tenant.clone(), namespace)
                            .get_opt(&workload.name)
                            .await
                            .map(|found| found.and_then(|d| d.spec.map(|s| s.template)))
                    }
                    WorkloadKind::StatefulSet => {
                        Api::<StatefulSet>::namespaced(tenant.clone(), namespace)
                            .get_opt(&workload.name)
                            .await
                            .map(|found| found.and_then(|s| s.spec.map(|s| s.template)))
                    }
                };
                match found {
                    Ok(template) => template,
                    Err(kube::Error::Api(status)) if status.is_forbidden() => {
                        warnings.push(format!(
                            "skillport: {}; until it may, the skills are not attached ({})",
                            status.message,
                            crate::tenant::grant_hint(namespace, account)
                        ));
                        None
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        // From the API server, not the watch cache: two SkillSets claiming one workload in
        // quick succession must see each other.
        let others = Api::<SkillSet>::namespaced(self.client.clone(), namespace)
            .list(&kube::api::ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|other| other.metadata.name.as_deref() != Some(name))
            .collect();
        let secrets = Api::<Secret>::namespaced(tenant, namespace);
        let mut missing_secrets = Vec::new();
        for secret in &spec.image_pull_secrets {
            match secrets.get_metadata_opt(&secret.name).await {
                Ok(Some(_)) => {}
                Ok(None) => missing_secrets.push(secret.name.clone()),
                // The account may not read it: the operator will say so on the SkillSet; the
                // webhook says nothing about a Secret it may not see.
                Err(kube::Error::Api(status)) if status.is_forbidden() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Facts {
            template,
            others,
            missing_secrets,
            forbidden,
            warnings,
        })
    }

    /// What the requesting `user` may not do of what the SkillSet has the operator do for it
    /// (a SubjectAccessReview each): get and patch the workload, get each Secret it names. The
    /// operator acts as the namespace's ServiceAccount anyway; this is the early, clear "no".
    async fn forbidden(
        &self,
        namespace: &str,
        spec: &SkillSetSpec,
        old: Option<&SkillSetSpec>,
        user: &UserInfo,
    ) -> kube::Result<Vec<Denial>> {
        let mut asks: Vec<(String, &str, &str, &str, String)> = Vec::new();
        let resource = |workload: &WorkloadRef| match workload.kind {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        };
        if let Some(workload) = &spec.workload_ref {
            for verb in ["get", "patch"] {
                asks.push((
                    "spec.workloadRef".into(),
                    verb,
                    "apps",
                    resource(workload),
                    workload.name.clone(),
                ));
            }
        }
        // Moving the skills off a workload changes it too (a release and a rollout).
        if let Some(old) = old.and_then(|old| old.workload_ref.as_ref())
            && spec.workload_ref.as_ref() != Some(old)
        {
            asks.push((
                "spec.workloadRef".into(),
                "patch",
                "apps",
                resource(old),
                old.name.clone(),
            ));
        }
        for (index, secret) in spec.image_pull_secrets.iter().enumerate() {
            asks.push((
                format!("spec.imagePullSecrets[{index}]"),
                "get",
                "",
                "secrets",
                secret.name.clone(),
            ));
        }
        if let Some(secret) = &spec.git_auth_secret_ref {
            asks.push((
                "spec.gitAuthSecretRef".into(),
                "get",
                "",
                "secrets",
                secret.name.clone(),
            ));
        }
        let reviews = Api::<SubjectAccessReview>::all(self.client.clone());
        let answers =
            futures_util::future::join_all(asks.iter().map(|(_, verb, group, resource, name)| {
                let review = access_review(user, namespace, verb, group, resource, name);
                let reviews = reviews.clone();
                async move { reviews.create(&PostParams::default(), &review).await }
            }))
            .await;
        let who = user.username.as_deref().unwrap_or("(unknown)");
        let mut denials = Vec::new();
        for ((field, verb, group, resource, name), answer) in asks.iter().zip(answers) {
            if answer?.status.is_some_and(|status| status.allowed) {
                continue;
            }
            let resource = if group.is_empty() {
                (*resource).to_owned()
            } else {
                format!("{resource}.{group}")
            };
            denials.push(Denial {
                field: field.clone(),
                message: format!(
                    "{who} may not {verb} {resource} {name:?} in namespace {namespace}, so a \
                     SkillSet of theirs may not have the operator do it"
                ),
            });
        }
        Ok(denials)
    }
}

/// A SubjectAccessReview: may `user` `verb` `resource` `name` of `group` in `namespace`?
fn access_review(
    user: &UserInfo,
    namespace: &str,
    verb: &str,
    group: &str,
    resource: &str,
    name: &str,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                name: Some(name.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// The endpoints, on `admission`'s state.
pub fn router(admission: Admission) -> Router {
    Router::new()
        .route(MUTATE_PODS, post(mutate_pods))
        .route(VALIDATE_SKILL_SETS, post(validate_skill_sets))
        .with_state(admission)
}

async fn mutate_pods(State(admission): State<Admission>, request: Request) -> Response {
    let (_budget, body) = match admission.receive(request).await {
        Ok(received) => received,
        Err(answer) => return *answer,
    };
    let request = match read(&body, "", "Pod", MUTATE_PODS) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    let name = request
        .object
        .as_ref()
        .and_then(|pod| pod.metadata.labels.as_ref())
        .and_then(|labels| labels.get(SKILLSET_LABEL))
        .filter(|_| request.operation == Operation::Create);
    let response = match (name, request.namespace.as_deref()) {
        (Some(name), Some(namespace)) => match admission.skill_set(namespace, name).await {
            Ok(skill_set) => decide_pod(
                &request,
                (namespace, name),
                skill_set.as_deref(),
                &admission.options,
                match &admission.policies {
                    Some(stores) => stores.applying(namespace),
                    None => Some(Vec::new()),
                }
                .as_deref(),
            ),
            Err(err) => AdmissionResponse::from(&request).deny(format!(
                "cannot read SkillSet {namespace}/{name} (the Pod asks for it with label \
                 {SKILLSET_LABEL}): {err}; the Pod's controller will retry"
            )),
        },
        // Not a labelled Pod being created: nothing to do.
        _ => AdmissionResponse::from(&request),
    };
    answer(response)
}

async fn validate_skill_sets(State(admission): State<Admission>, request: Request) -> Response {
    let (_budget, body) = match admission.receive(request).await {
        Ok(received) => received,
        Err(answer) => return *answer,
    };
    let request = match read(&body, crate::api::GROUP, "SkillSet", VALIDATE_SKILL_SETS) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    let candidate = match judged(&request) {
        Ok(Some(candidate)) => candidate,
        Ok(None) => return answer(AdmissionResponse::from(&request)),
        Err(why) => return answer(AdmissionResponse::from(&request).deny(why)),
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let old = request
        .old_object
        .as_ref()
        .and_then(|old| serde_json::to_value(old).ok())
        .and_then(|old| serde_json::from_value::<SkillSet>(old).ok());
    let response = match admission
        .facts(
            &namespace,
            &request.name,
            &candidate.spec,
            old.as_ref().map(|old| &old.spec),
            &request.user_info,
        )
        .await
    {
        Ok(facts) => decide_skill_set(&request, &candidate.spec, &facts, &admission.options),
        Err(err) => AdmissionResponse::from(&request).deny(format!(
            "cannot check SkillSet {namespace}/{} against its namespace: {err}; try again",
            request.name
        )),
    };
    answer(response)
}

/// The SkillSet to judge: `None` for what is not judged again (a delete, an object being
/// deleted, an update that leaves the spec as it was — finalizers and labels change often and
/// must not be refused for what the namespace became since).
fn judged(request: &AdmissionRequest<DynamicObject>) -> Result<Option<SkillSet>, String> {
    let parse = |object: &DynamicObject| {
        serde_json::to_value(object)
            .and_then(serde_json::from_value::<SkillSet>)
            .map_err(|err| format!("the object is not a SkillSet: {err}"))
    };
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(None);
    }
    let Some(object) = &request.object else {
        return Err("the review carries no object".to_owned());
    };
    let candidate = parse(object)?;
    if candidate.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    if let Some(old) = &request.old_object
        && parse(old)?.spec == candidate.spec
    {
        return Ok(None);
    }
    Ok(Some(candidate))
}

/// What the validating webhook looked up.
pub struct Facts {
    /// The pod template of the workload `workloadRef` names, if it exists.
    pub template: Option<PodTemplateSpec>,
    /// The namespace's other SkillSets.
    pub others: Vec<SkillSet>,
    /// The pull secrets named that do not exist.
    pub missing_secrets: Vec<String>,
    /// What the requesting user may not do of what the SkillSet asks the operator to do.
    pub forbidden: Vec<Denial>,
    /// Said to the user, the SkillSet admitted (e.g. its ServiceAccount may not read the
    /// workload).
    pub warnings: Vec<String>,
}

/// The answer to a SkillSet create or update: denied with every field at fault (in the message
/// and as status causes), or allowed with warnings.
pub fn decide_skill_set(
    request: &AdmissionRequest<DynamicObject>,
    spec: &SkillSetSpec,
    facts: &Facts,
    options: &Options,
) -> AdmissionResponse {
    let others: Vec<Other<'_>> = facts
        .others
        .iter()
        .map(|other| Other {
            name: other.metadata.name.as_deref().unwrap_or_default(),
            spec: &other.spec,
        })
        .collect();
    let Verdict {
        mut denials,
        mut warnings,
    } = validate(
        spec,
        facts.template.as_ref(),
        &others,
        |name| !facts.missing_secrets.iter().any(|missing| missing == name),
        options,
    );
    denials.splice(0..0, facts.forbidden.iter().cloned());
    warnings.extend(facts.warnings.iter().cloned());
    let mut response = AdmissionResponse::from(request);
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    if denials.is_empty() {
        return response;
    }
    let message = denials
        .iter()
        .map(|denial| format!("{}: {}", denial.field, denial.message))
        .collect::<Vec<_>>()
        .join("; ");
    let causes = denials
        .into_iter()
        .map(|denial| StatusCause {
            reason: "FieldValueInvalid".into(),
            message: denial.message,
            field: denial.field,
        })
        .collect();
    let mut response = response.deny(message);
    response.result = Status {
        code: 422,
        reason: "Invalid".into(),
        details: Some(StatusDetails {
            name: request.name.clone(),
            group: crate::api::GROUP.into(),
            kind: "SkillSet".into(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        }),
        ..response.result
    };
    response
}

/// The answer to a labelled Pod's creation: the patch that gives it the skills of SkillSet
/// `namespace/name` (`skill_set`, as found), or why not.
pub fn decide_pod(
    request: &AdmissionRequest<DynamicObject>,
    (namespace, name): (&str, &str),
    skill_set: Option<&SkillSet>,
    options: &Options,
    policies: Option<&[(String, ClusterSkillPolicySpec)]>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(skill_set) = skill_set else {
        return warn(
            response,
            format!(
                "skillport: SkillSet {namespace}/{name} (label {SKILLSET_LABEL}) does not exist; \
                 the Pod is admitted without skills"
            ),
        );
    };
    let refuse = |response: AdmissionResponse, why: String| match skill_set.spec.failure_policy {
        FailurePolicy::Ignore => warn(
            response,
            format!(
                "skillport: SkillSet {namespace}/{name} {why}; the Pod is admitted without skills"
            ),
        ),
        FailurePolicy::Fail => response.deny(format!(
            "SkillSet {namespace}/{name} {why}; it says failurePolicy: Fail, so Pods labelled \
             {SKILLSET_LABEL}={name} are refused until it is ready"
        )),
    };
    let (mode, resolved) = match injectable(skill_set) {
        Ok(ready) => ready,
        Err(why) => return refuse(response, why),
    };
    let Some(policies) = policies else {
        return refuse(
            response,
            "cannot be checked against the skill policies yet (the webhook has not listed \
             ClusterSkillPolicies and SkillPolicies; are their CRDs from deploy/crd.yaml \
             installed?)"
                .to_owned(),
        );
    };
    if let Some(why) = unverified(skill_set, resolved, policies) {
        return refuse(response, why);
    }
    let patch = match request.object.as_ref().map(serde_json::to_value) {
        Some(Ok(pod)) => inject(&pod, name, &skill_set.spec, resolved, mode, options)
            .map_err(|err| err.to_string()),
        Some(Err(err)) => Err(err.to_string()),
        None => Err("the review carries no Pod".to_owned()),
    };
    match patch {
        Ok(patch) if patch.0.is_empty() => response,
        Ok(patch) => match response.with_patch(patch) {
            Ok(response) => response,
            Err(err) => AdmissionResponse::from(request).deny(err.to_string()),
        },
        Err(err) => refuse(response, format!("cannot be injected into this Pod: {err}")),
    }
}

/// The delivery and resolved skills of a SkillSet that is ready to inject, or why it is not:
/// Ready for the generation of its spec, with a delivery chosen.
pub fn injectable(skill_set: &SkillSet) -> Result<(Mode, &[ResolvedSkill]), String> {
    let status = skill_set
        .status
        .as_ref()
        .ok_or_else(|| "is not resolved yet".to_owned())?;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
        .ok_or_else(|| "is not resolved yet".to_owned())?;
    if ready.status != "True" {
        return Err(format!(
            "is not ready ({}: {})",
            ready.reason, ready.message
        ));
    }
    if status.observed_generation != skill_set.metadata.generation {
        return Err("changed, and the operator has not resolved the change yet".to_owned());
    }
    let mode = status
        .delivery
        .and_then(Mode::delivered)
        .ok_or_else(|| "has no delivery chosen yet".to_owned())?;
    Ok((mode, &status.skills))
}

fn warn(mut response: AdmissionResponse, warning: String) -> AdmissionResponse {
    response.warnings.get_or_insert_with(Vec::new).push(warning);
    response
}

fn answer(response: AdmissionResponse) -> Response {
    axum::Json(response.into_review()).into_response()
}

/// Reads an AdmissionReview for objects of `group`/`kind` (`""` is the core group). A body
/// that is not a v1 AdmissionReview with a request is answered 400; a review of another kind is
/// denied (the webhook configuration sends the wrong objects here).
pub fn read(
    body: &[u8],
    group: &str,
    kind: &str,
    path: &str,
) -> Result<AdmissionRequest<DynamicObject>, Box<Response>> {
    let invalid = |message: String| {
        let review = AdmissionResponse::invalid(message).into_review();
        Err(Box::new(
            (StatusCode::BAD_REQUEST, axum::Json(review)).into_response(),
        ))
    };
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(err) => {
            return invalid(format!(
                "the body is not an AdmissionReview ({err}); {path} takes admission.k8s.io/v1 \
                 AdmissionReview JSON"
            ));
        }
    };
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return invalid(format!(
            "{path} takes {META_API_VERSION_V1} {META_KIND}, not {:?} {:?}: list only v1 in the \
             webhook's admissionReviewVersions",
            review.types.api_version, review.types.kind
        ));
    }
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return invalid("the AdmissionReview has no request".to_owned()),
    };
    if request.kind.group != group || request.kind.kind != kind {
        let sent = if request.kind.group.is_empty() {
            format!("{}/{}", request.kind.version, request.kind.kind)
        } else {
            format!(
                "{}/{} {}",
                request.kind.group, request.kind.version, request.kind.kind
            )
        };
        let response = AdmissionResponse::from(&request).deny(format!(
            "{path} admits {kind} objects, not {sent}: check the webhook configuration's rules"
        ));
        return Err(Box::new(answer(response)));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skill_set(generation: i64, observed: i64, ready: &str) -> SkillSet {
        serde_json::from_value(json!({
            "apiVersion": "skillport.dev/v1alpha1",
            "kind": "SkillSet",
            "metadata": {"name": "tools", "namespace": "agents", "generation": generation},
            "spec": {"skills": [{"name": "pdf", "image": "r.io/pdf:1"}]},
            "status": {
                "observedGeneration": observed,
                "delivery": "ImageVolume",
                "skills": [{"name": "pdf", "digest": format!("sha256:{}", "1".repeat(64))}],
                "conditions": [{"type": "Ready", "status": ready, "reason": "Resolved",
                    "message": "m", "lastTransitionTime": "2026-12-02T06:00:00Z"}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn injectable_only_when_ready_for_the_current_generation() {
        assert!(injectable(&skill_set(2, 2, "True")).is_ok());
        let stale = injectable(&skill_set(3, 2, "True")).unwrap_err();
        assert!(stale.contains("not resolved the change"), "{stale}");
        let not_ready = injectable(&skill_set(2, 2, "False")).unwrap_err();
        assert!(
            not_ready.contains("is not ready (Resolved: m)"),
            "{not_ready}"
        );
        let mut fresh = skill_set(1, 1, "True");
        fresh.status = None;
        assert!(injectable(&fresh).is_err());
    }

    fn request(
        operation: &str,
        object: &SkillSet,
        old: Option<&SkillSet>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"group": "skillport.dev", "version": "v1alpha1", "kind": "SkillSet"},
                "resource": {"group": "skillport.dev", "version": "v1alpha1", "resource": "skillsets"},
                "name": "tools", "namespace": "agents", "operation": operation,
                "userInfo": {}, "object": object, "oldObject": old,
            },
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    #[test]
    fn only_creates_and_spec_changes_of_live_skill_sets_are_judged() {
        let old = skill_set(1, 1, "True");
        assert!(judged(&request("CREATE", &old, None)).unwrap().is_some());
        let mut labelled = old.clone();
        labelled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(
            judged(&request("UPDATE", &labelled, Some(&old)))
                .unwrap()
                .is_none()
        );
        let mut changed = old.clone();
        changed.spec.update_interval = "20s".into();
        assert!(
            judged(&request("UPDATE", &changed, Some(&old)))
                .unwrap()
                .is_some()
        );
        let mut deleting = changed.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::default(),
            ));
        assert!(
            judged(&request("UPDATE", &deleting, Some(&old)))
                .unwrap()
                .is_none()
        );
    }
}

//! What the operator's cluster tests share: skill images pushed to a real registry, `deploy/`
//! installed, the operator running in-process as its ServiceAccount, and small waits.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_oci::{BuildRequest, Reference, Store};
use skillport_operator::api::SkillSet;
use skillport_operator::controller::ImageVolumes;
use skillport_operator::runtime::{self, Config};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress};
use skillport_testkit::{Cluster, Registry};

pub const NAMESPACE: &str = "agents";
pub const INIT_IMAGE: &str = "registry.example/skillport@sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// The operator's log lines in the test's output (shown when it fails).
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("skillport_operator=debug,kube_runtime=info")
        .with_test_writer()
        .try_init();
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`
/// and the last value seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A skill image built with skillport and pushed to the registry; returns its digest.
pub async fn push_skill(
    registry: &Registry,
    work: &Path,
    name: &str,
    tag: &str,
    body: &str,
) -> String {
    let dir = work.join(format!("src-{name}-{tag}")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: The {name} skill. Use it in tests.\nmetadata:\n  version: {tag}.0.0\n---\n\n{body}\n"
        ),
    )
    .unwrap();
    let store = Store::open(&work.join(format!("store-{name}-{tag}"))).unwrap();
    let skill = skillport_skill::load(&dir, skillport_skill::Mode::Lenient).unwrap();
    let entries = skillport_skill::walk(&dir).unwrap();
    let local: Reference = format!("{name}:{tag}").parse().unwrap();
    let built = skillport_oci::build(
        &store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: None,
            names: std::slice::from_ref(&local),
        },
        &mut |_| {},
    )
    .unwrap();
    let client = publisher(registry, work);
    let remote: Reference = format!("{}/skills/{name}:{tag}", registry.host())
        .parse()
        .unwrap();
    client
        .push(&store, &local, &remote, Arc::new(NoProgress))
        .await
        .unwrap();
    built.digest().to_string()
}

/// A registry client with the registry's CA and credentials, as a publisher has them.
pub fn publisher(registry: &Registry, work: &Path) -> Client {
    let config = registry.docker_config(&work.join("publisher"));
    Client::new(
        Credentials::from_files(vec![AuthFile::read(&config).unwrap()]),
        ClientOptions {
            ca_files: registry
                .ca_file()
                .map(Path::to_path_buf)
                .into_iter()
                .collect(),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// Signs `skills/NAME:TAG` in the registry as `cosign sign --key` (v3) does: a sigstore
/// bundle attached to the digest the tag points at now. Returns that digest.
pub async fn sign_skill(
    registry: &Registry,
    work: &Path,
    name: &str,
    tag: &str,
    key: &skillport_sign::PrivateKey,
) -> String {
    let client = publisher(registry, work);
    let reference: Reference = format!("{}/skills/{name}:{tag}", registry.host())
        .parse()
        .unwrap();
    let image = client.resolve(&reference).await.unwrap();
    let bundle = skillport_sign::bundle::sign(key, &image.digest);
    client
        .attach(
            &reference,
            &image,
            skillport_registry::BUNDLE_ARTIFACT_TYPE,
            &bundle,
            std::collections::BTreeMap::new(),
        )
        .await
        .unwrap();
    image.digest.to_string()
}

/// Where the in-process webhook listens, and the CA its certificate is from.
pub struct WebhookAt<'a> {
    pub port: u16,
    pub ca_pem: &'a str,
}

/// A kustomization of deploy/ (from `dir`, where it will be written) as the tests install it:
/// without cert-manager's Issuer and Certificate (no cert-manager here); the webhook
/// configurations removed, or — exactly as deploy/ has them otherwise — sent to the webhook on
/// 127.0.0.1 (`clientConfig.url` with the test CA instead of the in-cluster Service).
pub fn deploy_kustomization(dir: &Path, webhook: Option<&WebhookAt<'_>>) -> Value {
    let deploy = workspace_root().join("deploy").canonicalize().unwrap();
    let depth = dir.components().count() - 1;
    let base = format!(
        "{}{}",
        "../".repeat(depth),
        deploy.display().to_string().trim_start_matches('/')
    );
    let delete = |api_version: &str, kind: &str, name: &str, namespace: Option<&str>| {
        let mut metadata = json!({"name": name});
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({"patch": json!({
            "$patch": "delete", "apiVersion": api_version, "kind": kind, "metadata": metadata,
        }).to_string()})
    };
    let mut patches: Vec<Value> = [
        ("Issuer", "skillport-selfsigned"),
        ("Certificate", "skillport-webhook-ca"),
        ("Issuer", "skillport-ca"),
        ("Certificate", "skillport-webhook"),
    ]
    .into_iter()
    .map(|(kind, name)| delete("cert-manager.io/v1", kind, name, Some("skillport-system")))
    .collect();
    for (kind, path) in [
        ("MutatingWebhookConfiguration", "/mutate-pods"),
        ("ValidatingWebhookConfiguration", "/validate-skillsets"),
    ] {
        patches.push(match webhook {
            None => delete("admissionregistration.k8s.io/v1", kind, "skillport", None),
            Some(at) => {
                use base64::Engine as _;
                let client_config = json!({
                    "url": format!("https://127.0.0.1:{}{path}", at.port),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(at.ca_pem),
                });
                json!({
                    "target": {"kind": kind, "name": "skillport"},
                    "patch": json!([
                        {"op": "replace", "path": "/webhooks/0/clientConfig", "value": client_config},
                    ]).to_string(),
                })
            }
        });
    }
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "patches": patches,
    })
}

/// Writes `kustomization` into `dir` (JSON is YAML).
pub fn write_kustomization(dir: &Path, kustomization: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), kustomization.to_string()).unwrap();
}

/// `kubectl apply --server-side -k deploy/`, then waits for the CRD to be served.
pub async fn install(cluster: &Cluster) {
    install_with(cluster, None).await;
}

/// [`install`], with deploy/'s webhook configurations sent to the webhook on 127.0.0.1, when
/// given.
pub async fn install_with(cluster: &Cluster, webhook: Option<&WebhookAt<'_>>) {
    let overlay = tempfile::tempdir().unwrap();
    write_kustomization(
        overlay.path(),
        &deploy_kustomization(overlay.path(), webhook),
    );
    let output = cluster
        .kubectl()
        .args(["apply", "--server-side", "-k"])
        .arg(overlay.path())
        .output()
        .expect("running kubectl");
    assert!(
        output.status.success(),
        "kubectl apply --server-side -k deploy/ (less cert-manager) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The operator runs in the test's process (as the same ServiceAccount): the Deployment
    // from deploy/ stays, scaled to zero (its image is not in the test registry).
    Api::<Deployment>::namespaced(cluster.client(), "skillport-system")
        .patch(
            "skillport-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scaling deploy/'s operator Deployment to zero");
    // The `default` ServiceAccount every namespace gets from the controller-manager (which not
    // every test runs); the dry-run probe Pod needs it.
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    match Api::<ServiceAccount>::namespaced(cluster.client(), "skillport-system")
        .create(&PostParams::default(), &account)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("creating skillport-system/default: {err}"),
    }
    wait_established(&cluster.client(), "skillsets.skillport.dev").await;
}

/// Waits until CRD `name` is established, for 30 s at most.
pub async fn wait_established(client: &kube::Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        &format!("CRD {name} is established"),
        Duration::from_secs(30),
        || async {
            let crd = crds.get(name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                Ok(())
            } else {
                Err("not established".into())
            }
        },
    )
    .await;
}

/// The operator, in this process, as ServiceAccount skillport-system/skillport-operator.
/// deploy/ installed, and the agents' namespace with the registry's pull secret; returns an
/// admin client.
pub async fn prepare(cluster: &Cluster, registry: &Registry, work: &Path) -> kube::Client {
    prepare_with(cluster, registry, work, None).await
}

/// [`prepare`], deploy/'s webhook configurations sent to `webhook` when given.
pub async fn prepare_with(
    cluster: &Cluster,
    registry: &Registry,
    work: &Path,
    webhook: Option<&WebhookFiles>,
) -> kube::Client {
    install_with(cluster, webhook.map(WebhookFiles::at).as_ref()).await;
    tenant_namespace(cluster, registry, work).await
}

/// The agents' namespace as a namespace admin sets it up for SkillSets (the README's quick
/// start): its `skillport` ServiceAccount bound to the ClusterRole skillport-tenant, and the
/// registry's pull secret. Returns an admin client.
pub async fn tenant_namespace(cluster: &Cluster, registry: &Registry, work: &Path) -> kube::Client {
    let admin = cluster.client();
    cluster.create_namespace(NAMESPACE).await;
    grant_tenant(&admin, NAMESPACE, "skillport", "skillport-tenant").await;
    let_operator_act_in(&admin, NAMESPACE).await;
    create_pull_secret(&admin, registry, work).await;
    admin
}

/// The namespace opts in: the operator may act as its ServiceAccounts (ClusterRole
/// skillport-impersonator bound there to the operator's ServiceAccount).
pub async fn let_operator_act_in(admin: &kube::Client, namespace: &str) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "skillport-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "skillport-impersonator"},
        "subjects": [{"kind": "ServiceAccount", "name": "skillport-operator",
                      "namespace": "skillport-system"}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch(
            "skillport-operator",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap_or_else(|err| panic!("binding skillport-impersonator in {namespace}: {err}"));
}

/// ServiceAccount `namespace/account`, bound in its namespace to ClusterRole `role`.
pub async fn grant_tenant(admin: &kube::Client, namespace: &str, account: &str, role: &str) {
    let service_account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": account}})).unwrap();
    match Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &service_account)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("creating ServiceAccount {namespace}/{account}: {err}"),
    }
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{account}-{role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch(
            &format!("{account}-{role}"),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap_or_else(|err| panic!("binding {role} to {namespace}/{account}: {err}"));
}

/// [`prepare`] on a test node, then the operator, its init image the static `skillport`
/// (`binary`) pushed to the node's registry.
pub async fn prepare_node(
    node: &skillport_testkit::Node,
    registry: &Registry,
    work: &Path,
    binary: &Path,
) -> (kube::Client, Operator) {
    prepare_node_with(node, registry, work, binary, None).await
}

/// [`prepare_node`], the operator also serving the webhook (`webhook`), registered as deploy/
/// registers it but by URL.
pub async fn prepare_node_with(
    node: &skillport_testkit::Node,
    registry: &Registry,
    work: &Path,
    binary: &Path,
    webhook: Option<&WebhookFiles>,
) -> (kube::Client, Operator) {
    let admin = prepare_with(node.cluster(), registry, work, webhook).await;
    let mut config = config(registry);
    config.init_image = node.binary_image("skillport", binary);
    config.webhook = webhook.map(|files| files.serving.clone());
    (admin, Operator::run(node.cluster(), config).await)
}

/// The operator's settings in these tests: trusting the registry's CA, detecting image volumes.
pub fn config(registry: &Registry) -> Config {
    Config {
        init_image: INIT_IMAGE.into(),
        ca_files: registry
            .ca_file()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
        image_volumes: ImageVolumes::Detect,
        probe_interval: Duration::from_secs(600),
        namespace: "skillport-system".into(),
        metrics_addr: None,
        concurrency: 4,
        leader_election: None,
        identity: None,
        webhook: None,
        default_service_account: skillport_operator::tenant::DEFAULT_SERVICE_ACCOUNT.into(),
        allow_system_mount_paths: false,
        // Old plan ConfigMaps go soon after they are out of use (tests/plan_config_maps.rs).
        plan_grace: Duration::from_secs(1),
    }
}

pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    pub async fn start(cluster: &Cluster, registry: &Registry) -> Operator {
        Operator::start_with(cluster, registry, ImageVolumes::Detect).await
    }

    pub async fn start_with(
        cluster: &Cluster,
        registry: &Registry,
        image_volumes: ImageVolumes,
    ) -> Operator {
        let mut config = config(registry);
        config.image_volumes = image_volumes;
        Operator::run(cluster, config).await
    }

    pub async fn run(cluster: &Cluster, config: Config) -> Operator {
        let identity = cluster
            .service_account("skillport-system", "skillport-operator")
            .await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runtime::run(identity.client, config, async {
            let _ = stopped.await;
        }));
        Operator {
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the operator stops within 30 s of being told")
            .expect("the operator task does not panic")
            .expect("the operator returns Ok");
    }
}

pub fn deployment_manifest(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"team": "agents"}},
                "spec": {
                    "containers": [
                        {"name": "agent", "image": "registry.example/agent:1",
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "registry.example/sidecar:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    })
}

/// Applies the user's own Deployment as a GitOps tool would: server-side, its own field manager.
pub async fn gitops_apply(
    deployments: &Api<Deployment>,
    manifest: &Value,
) -> Result<Deployment, kube::Error> {
    let name = manifest["metadata"]["name"].as_str().unwrap();
    deployments
        .patch(name, &PatchParams::apply("gitops"), &Patch::Apply(manifest))
        .await
}

pub fn template(deployment: &Deployment) -> PodTemplateSpec {
    deployment.spec.as_ref().unwrap().template.clone()
}

pub fn condition(skill_set: &SkillSet, type_: &str) -> Option<(String, String, String)> {
    skill_set
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub async fn wait_condition(
    api: &Api<SkillSet>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> SkillSet {
    wait_for(
        &format!("SkillSet {name}: {type_}={status} ({reason})"),
        Duration::from_secs(60),
        || async {
            let skill_set = api.get(name).await.map_err(|e| e.to_string())?;
            match condition(&skill_set, type_) {
                Some((s, r, _)) if s == status && r == reason => Ok(skill_set),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// The first Pod of `pods` with `labels` (a selector), once there is one, for 60 s at most.
pub async fn wait_pod(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    labels: &str,
    what: &str,
) -> k8s_openapi::api::core::v1::Pod {
    wait_for(what, Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels(labels))
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .next()
            .ok_or_else(|| "no Pod yet".to_owned())
    })
    .await
}

/// Waits until SkillSet `name` is gone (its finalizer done), for 30 s at most.
pub async fn wait_gone(api: &Api<SkillSet>, name: &str) {
    wait_for(
        &format!("SkillSet {name} is gone"),
        Duration::from_secs(30),
        || async {
            match api.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".into()),
            }
        },
    )
    .await;
}

pub async fn events_for(client: &kube::Client, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

pub async fn create_pull_secret(client: &kube::Client, registry: &Registry, work: &Path) {
    let config = std::fs::read(registry.docker_config(&work.join("secret"))).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred.example.com"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": k8s_openapi::ByteString(config)},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

pub fn skill_set(name: &str, host: &str, extra: &Value) -> SkillSet {
    let mut value = json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "SkillSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "skills": [
                {"name": "pdf", "image": format!("{host}/skills/pdf:1")},
                {"name": "review", "image": format!("{host}/skills/review:1"), "mountPath": "/opt/review"},
            ],
            "imagePullSecrets": [{"name": "regcred.example.com"}],
            "updateInterval": "10s",
        },
    });
    for (key, field) in extra.as_object().unwrap() {
        value["spec"][key] = field.clone();
    }
    serde_json::from_value(value).unwrap()
}

pub fn volume_reference(deployment: &Deployment, volume: &str) -> Option<String> {
    template(deployment)
        .spec?
        .volumes?
        .into_iter()
        .find(|v| v.name == volume)?
        .image?
        .reference
}

/// The plan ConfigMap the template of `deployment` mounts (InitContainer).
pub fn plan_reference(deployment: &Deployment) -> Option<String> {
    let volume = template(deployment)
        .spec?
        .volumes?
        .into_iter()
        .find(|v| v.name == "skillport-plan")?;
    Some(volume.config_map?.name)
}

/// A control plane with the controller-manager, deploy/ installed with its webhooks sent to the
/// operator on 127.0.0.1, the agents' namespace set up, and skills pdf and review pushed.
pub struct WebhookStage {
    pub cluster: Cluster,
    pub registry: Registry,
    pub work: tempfile::TempDir,
    pub webhook: WebhookFiles,
    pub admin: kube::Client,
}

impl WebhookStage {
    pub async fn start() -> WebhookStage {
        let cluster =
            Cluster::start(skillport_testkit::ClusterOptions::default().with_controller_manager())
                .await;
        let registry = Registry::tls_basic_auth();
        let work = tempfile::tempdir().unwrap();
        let webhook = WebhookFiles::new();
        install_with(&cluster, Some(&webhook.at())).await;
        let admin = tenant_namespace(&cluster, &registry, work.path()).await;
        push_skill(&registry, work.path(), "pdf", "1", "pdf body").await;
        push_skill(&registry, work.path(), "review", "1", "review body").await;
        WebhookStage {
            cluster,
            registry,
            work,
            webhook,
            admin,
        }
    }

    /// The operator's configuration, serving the webhook.
    pub fn config(&self) -> Config {
        let mut config = config(&self.registry);
        config.webhook = Some(self.webhook.serving.clone());
        config
    }
}

/// A certificate for the webhook on 127.0.0.1 from a test CA, in files as a Secret volume holds
/// them, and a free port to serve on.
pub struct WebhookFiles {
    pub ca: skillport_testkit::TestCa,
    pub dir: tempfile::TempDir,
    pub serving: runtime::WebhookServing,
}

impl WebhookFiles {
    pub fn new() -> WebhookFiles {
        let ca = skillport_testkit::TestCa::new();
        let cert = ca.issue_server(&["127.0.0.1"]);
        let dir = tempfile::tempdir().unwrap();
        let tls = skillport_operator::webhook::TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        std::fs::write(&tls.cert, &cert.cert_pem).unwrap();
        std::fs::write(&tls.key, &cert.key_pem).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let serving = runtime::WebhookServing {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            tls,
        };
        WebhookFiles { ca, dir, serving }
    }

    pub fn at(&self) -> WebhookAt<'_> {
        WebhookAt {
            port: self.serving.addr.port(),
            ca_pem: self.ca.ca_pem(),
        }
    }
}

/// Server-side applies `body` (any kind) as the test's admin.
pub async fn apply(
    admin: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    body: Value,
) {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ClusterSkillPolicy" => "clusterskillpolicies".to_owned(),
        "SkillPolicy" => "skillpolicies".to_owned(),
        other => format!("{}s", other.to_lowercase()),
    };
    let resource = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(group, version, kind),
        &plural,
    );
    let api: Api<kube::api::DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(admin.clone(), namespace, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    let name = body["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|err| panic!("applying {kind} {name}: {err}"));
}

/// ClusterSkillPolicy `corp`: the registry's skills must be signed with the key in ConfigMap
/// `skillport-system/skill-keys` (`release.pub`).
pub fn policy(host: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "skillport.dev/v1alpha1", "kind": "ClusterSkillPolicy",
        "metadata": {"name": "corp"},
        "spec": {
            "mode": mode,
            "images": [format!("{host}/skills/**")],
            "authorities": [{"name": "release", "key": {"configMap": "skill-keys", "key": "release.pub"}}],
        },
    })
}

/// ConfigMap `skillport-system/skill-keys` holding `key`'s public half as `release.pub`.
pub async fn publish_release_key(admin: &kube::Client, key: &skillport_sign::PrivateKey) {
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), "skillport-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "skill-keys"},
                "data": {"release.pub": key.public_key().to_pem()}}))
            .unwrap(),
        )
        .await
        .unwrap();
}

/// The release key published and ClusterSkillPolicy `corp` enforcing it on the registry at
/// `host`.
pub async fn enforce_release_key(
    admin: &kube::Client,
    key: &skillport_sign::PrivateKey,
    host: &str,
) {
    publish_release_key(admin, key).await;
    apply(
        admin,
        "skillport.dev/v1alpha1",
        "ClusterSkillPolicy",
        None,
        policy(host, "Enforce"),
    )
    .await;
}

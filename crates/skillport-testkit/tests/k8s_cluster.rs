//! The real control plane does what only a real API server does: CEL cost budgets, list-map
//! uniqueness, server-side apply ownership, feature-gated fields dropped without a word,
//! controllers, webhooks, ServiceAccount tokens under RBAC.
//!
//! Why so few test functions: nextest runs every test in its own process, so a cluster cannot be
//! shared between tests without an out-of-process setup script. Starting one costs ~3 s and two
//! busy cores, so each test below is one cluster *configuration*, and the checks that can share it
//! run inside it one after another, each in its own namespace, each a named `async fn` so a
//! failure says which check broke.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};
use skillport_testkit::{Cluster, ClusterOptions, K8S_VERSION, TlsServer, k8s_tool_in};

const GROUP: &str = "probe.skillport.test";
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_answers_like_a_real_api_server() {
    let cluster = Cluster::start(
        ClusterOptions::default()
            .feature_gate("ImageVolume", true)
            .with_controller_manager()
            .with_scheduler(),
    )
    .await;
    eprintln!(
        "etcd + kube-apiserver ready in {:.2?}",
        cluster.started_in()
    );

    kubectl_reports_the_pinned_server_version(&cluster);
    cel_rules_are_costed_at_creation_and_enforced_per_field(&cluster).await;
    list_map_rejects_duplicate_names_without_cel(&cluster).await;
    server_side_apply_tracks_managers_and_reports_conflicts(&cluster).await;
    image_volume_survives_a_dry_run_with_the_gate_on(&cluster).await;
    service_account_tokens_are_held_to_rbac(&cluster).await;
    mutating_webhook_on_loopback_is_called_and_its_patch_applied(&cluster).await;
    controller_manager_turns_a_deployment_into_pods(&cluster).await;
}

/// What the operator's `Auto` delivery must detect: an API server with the gate off *accepts* a
/// Pod with an `image` volume and stores it without the volume and without the mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_volume_gate_off_drops_the_volume_and_its_mount_silently() {
    let cluster =
        Cluster::start(ClusterOptions::default().feature_gate("ImageVolume", false)).await;
    eprintln!(
        "etcd + kube-apiserver ready in {:.2?}",
        cluster.started_in()
    );
    let namespace = cluster.create_namespace("gate-off").await;
    let stored = dry_run_image_volume_pod(&cluster, &namespace)
        .await
        .expect("a gate-off API server accepts the Pod without an error");
    assert!(
        volume_names(&stored).iter().all(|name| name != "skill"),
        "the image volume should be dropped: {:?}",
        volume_names(&stored)
    );
    assert!(
        mount_names(&stored).iter().all(|name| name != "skill"),
        "the mount of the dropped volume should be dropped too: {:?}",
        mount_names(&stored)
    );
}

#[test]
#[should_panic(expected = "scripts/k8s-tools.sh")]
fn a_missing_binary_names_the_script_that_builds_it() {
    let empty = tempfile::tempdir().unwrap();
    k8s_tool_in(empty.path(), "kube-apiserver");
}

// ------------------------------------------------------------------------------------------------

fn kubectl_reports_the_pinned_server_version(cluster: &Cluster) {
    let output = cluster
        .kubectl()
        .args(["version", "-o", "json"])
        .output()
        .expect("running kubectl");
    assert!(
        output.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
    let wanted = format!("v{K8S_VERSION}");
    assert_eq!(version["clientVersion"]["gitVersion"], wanted.as_str());
    assert_eq!(version["serverVersion"]["gitVersion"], wanted.as_str());
}

/// A CRD whose `skills` items carry a CEL rule; `bounded` adds the limits the cost estimator
/// needs. `skills` is also a list-map keyed by `name`.
fn probe_crd(plural: &str, kind: &str, bounded: bool) -> CustomResourceDefinition {
    let mut name = json!({"type": "string"});
    let mut mount_path = json!({"type": "string"});
    let mut skills = json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "mountPath"],
            "properties": {"name": name.clone(), "mountPath": mount_path.clone()},
            "x-kubernetes-validations": [{
                "rule": "!self.mountPath.contains('..') && self.mountPath.startsWith('/')",
                "message": "mountPath must be absolute and must not contain ..",
            }],
        },
    });
    if bounded {
        name["maxLength"] = json!(63);
        mount_path["maxLength"] = json!(256);
        skills["maxItems"] = json!(64);
        skills["items"]["properties"] = json!({"name": name, "mountPath": mount_path});
    }
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"skills": skills},
                    }},
                }},
            }],
        },
    }))
    .expect("a valid CRD")
}

async fn create_established_crd(cluster: &Cluster, crd: &CustomResourceDefinition) {
    let crds = Api::<CustomResourceDefinition>::all(cluster.client());
    let name = crd.metadata.name.clone().expect("named");
    crds.create(&PostParams::default(), crd)
        .await
        .unwrap_or_else(|err| panic!("creating CRD {name}: {err}"));
    eventually("CRD Established", || async {
        let crd = crds.get(&name).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

fn probe_api(cluster: &Cluster, namespace: &str, plural: &str, kind: &str) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural);
    Api::namespaced_with(cluster.client(), namespace, &resource)
}

fn probe_object(kind: &str, name: &str, skills: &Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"skills": skills},
    }))
    .expect("a valid object")
}

async fn cel_rules_are_costed_at_creation_and_enforced_per_field(cluster: &Cluster) {
    let crds = Api::<CustomResourceDefinition>::all(cluster.client());
    let refused = crds
        .create(
            &PostParams::default(),
            &probe_crd("unboundedprobes", "UnboundedProbe", false),
        )
        .await
        .expect_err("a CEL rule over unbounded strings in an unbounded list exceeds the budget");
    let message = api_message(&refused);
    assert!(
        message.contains("exceeds budget") && message.contains("maxLength"),
        "expected the CEL cost error, got: {message}"
    );

    create_established_crd(cluster, &probe_crd("probes", "Probe", true)).await;
    let namespace = cluster.create_namespace("cel").await;
    let probes = probe_api(cluster, &namespace, "probes", "Probe");
    probes
        .create(
            &PostParams::default(),
            &probe_object(
                "Probe",
                "good",
                &json!([{"name": "a", "mountPath": "/skills/a"}]),
            ),
        )
        .await
        .expect("a valid object is accepted");
    let rejected = probes
        .create(
            &PostParams::default(),
            &probe_object(
                "Probe",
                "bad",
                &json!([
                    {"name": "a", "mountPath": "/skills/a"},
                    {"name": "b", "mountPath": "/skills/../etc"},
                ]),
            ),
        )
        .await
        .expect_err("the CEL rule rejects a mountPath with ..");
    let message = api_message(&rejected);
    assert_eq!(api_code(&rejected), Some(422), "{message}");
    assert!(
        message.contains("spec.skills[1]")
            && message.contains("mountPath must be absolute and must not contain .."),
        "expected the rule's message at spec.skills[1], got: {message}"
    );
}

async fn list_map_rejects_duplicate_names_without_cel(cluster: &Cluster) {
    // The `probes` CRD from the CEL check: `skills` is a list-map keyed by `name`.
    let namespace = cluster.create_namespace("list-map").await;
    let probes = probe_api(cluster, &namespace, "probes", "Probe");
    let rejected = probes
        .create(
            &PostParams::default(),
            &probe_object(
                "Probe",
                "twice",
                &json!([
                    {"name": "a", "mountPath": "/skills/a"},
                    {"name": "a", "mountPath": "/skills/b"},
                ]),
            ),
        )
        .await
        .expect_err("duplicate keys in a list-map are rejected");
    let message = api_message(&rejected);
    assert_eq!(api_code(&rejected), Some(422), "{message}");
    assert!(
        message.contains("spec.skills[1]") && message.contains(r#"{"name":"a"}"#),
        "expected a duplicate-key error at spec.skills[1], got: {message}"
    );
}

async fn server_side_apply_tracks_managers_and_reports_conflicts(cluster: &Cluster) {
    let namespace = cluster.create_namespace("apply").await;
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client(), &namespace);
    let apply = |data: Value| {
        Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "shared"},
            "data": data,
        }))
    };
    config_maps
        .patch(
            "shared",
            &PatchParams::apply("gitops"),
            &apply(json!({"a": "1"})),
        )
        .await
        .expect("gitops applies data.a");
    let both = config_maps
        .patch(
            "shared",
            &PatchParams::apply("skillport"),
            &apply(json!({"b": "2"})),
        )
        .await
        .expect("skillport applies data.b");
    let managers: Vec<String> = both
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.manager)
        .collect();
    assert!(
        managers.contains(&"gitops".to_owned()) && managers.contains(&"skillport".to_owned()),
        "both managers should own fields: {managers:?}"
    );
    assert_eq!(
        both.data.unwrap_or_default().len(),
        2,
        "an apply by one manager leaves the other's fields alone"
    );
    let conflict = config_maps
        .patch(
            "shared",
            &PatchParams::apply("skillport"),
            &apply(json!({"a": "3", "b": "2"})),
        )
        .await
        .expect_err("changing a field another manager owns conflicts");
    let message = api_message(&conflict);
    assert_eq!(api_code(&conflict), Some(409), "{message}");
    assert!(
        message.contains(r#"conflict with "gitops""#) && message.contains(".data.a"),
        "expected the conflict to name gitops and .data.a, got: {message}"
    );
}

async fn dry_run_image_volume_pod(cluster: &Cluster, namespace: &str) -> kube::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "agent"},
        "spec": {
            "containers": [{
                "name": "agent",
                "image": "127.0.0.1:5000/agent:v1",
                "volumeMounts": [{"name": "skill", "mountPath": "/skills/s1", "readOnly": true}],
            }],
            "volumes": [{
                "name": "skill",
                "image": {"reference": "127.0.0.1:5000/skills/s1:v1", "pullPolicy": "IfNotPresent"},
            }],
        },
    }))
    .expect("a valid Pod");
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    Api::<Pod>::namespaced(cluster.client(), namespace)
        .create(&dry_run, &pod)
        .await
}

async fn image_volume_survives_a_dry_run_with_the_gate_on(cluster: &Cluster) {
    let namespace = cluster.create_namespace("gate-on").await;
    let stored = dry_run_image_volume_pod(cluster, &namespace)
        .await
        .expect("dry-run of a Pod with an image volume");
    let volume = stored
        .spec
        .as_ref()
        .and_then(|spec| spec.volumes.as_ref())
        .and_then(|volumes| volumes.iter().find(|volume| volume.name == "skill"))
        .unwrap_or_else(|| panic!("the image volume is kept: {:?}", volume_names(&stored)));
    assert_eq!(
        volume
            .image
            .as_ref()
            .and_then(|image| image.reference.as_deref()),
        Some("127.0.0.1:5000/skills/s1:v1")
    );
    assert!(
        mount_names(&stored).contains(&"skill".to_owned()),
        "the mount is kept: {:?}",
        mount_names(&stored)
    );
}

async fn service_account_tokens_are_held_to_rbac(cluster: &Cluster) {
    let namespace = cluster.create_namespace("rbac").await;
    let admin = cluster.client();
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("valid");
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &account)
        .await
        .expect("creating ServiceAccount reader");
    let reader = cluster.service_account(&namespace, "reader").await;
    let as_reader = Api::<ConfigMap>::namespaced(reader.client.clone(), &namespace);
    let forbidden = as_reader
        .list(&ListParams::default())
        .await
        .expect_err("no Role yet: listing ConfigMaps is forbidden");
    let message = api_message(&forbidden);
    assert_eq!(api_code(&forbidden), Some(403), "{message}");
    assert!(
        message.contains(&format!("system:serviceaccount:{namespace}:reader")),
        "the API server names the ServiceAccount: {message}"
    );

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-config"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }))
    .expect("valid");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader-reads-config"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-config"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }))
    .expect("valid");
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    Api::<RoleBinding>::namespaced(admin, &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("creating the RoleBinding");
    eventually(
        "the RoleBinding lets the reader list ConfigMaps",
        || async { as_reader.list(&ListParams::default()).await.ok().map(drop) },
    )
    .await;

    // The kubeconfig works for other programs too.
    let output = std::process::Command::new(skillport_testkit::k8s_tool("kubectl"))
        .arg("--kubeconfig")
        .arg(&reader.kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .expect("running kubectl");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("system:serviceaccount:{namespace}:reader"),
        "kubectl auth whoami: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn mutating_webhook_on_loopback_is_called_and_its_patch_applied(cluster: &Cluster) {
    let namespace = cluster.create_namespace("webhook").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let router = webhook_router(Arc::clone(&calls));
    let server = TlsServer::start(router, &cluster.ca().issue_server(&["127.0.0.1"])).await;
    let configuration = webhook_configuration(&server, cluster, &namespace);
    let webhooks = Api::<MutatingWebhookConfiguration>::all(cluster.client());
    webhooks
        .create(&PostParams::default(), &configuration)
        .await
        .expect("creating the MutatingWebhookConfiguration");

    let pods = Api::<Pod>::namespaced(cluster.client(), &namespace);
    let pod = |name: &str, inject: bool| -> Pod {
        let labels = if inject {
            json!({"skillport.dev/inject": "yes"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "annotations": {"keep": "me"}},
            "spec": {"containers": [{"name": "agent", "image": "127.0.0.1:5000/agent:v1"}]},
        }))
        .expect("a valid Pod")
    };
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    // The API server picks up new webhook configurations from a watch: retry until it calls.
    let mutated = eventually("the webhook's patch on a labelled Pod", || async {
        let stored = pods.create(&dry_run, &pod("labelled", true)).await.ok()?;
        let annotations = stored.metadata.annotations?;
        (annotations.get("skillport.dev/mutated").map(String::as_str) == Some("yes"))
            .then_some(annotations)
    })
    .await;
    assert_eq!(
        mutated.get("keep").map(String::as_str),
        Some("me"),
        "the patch adds, it does not replace"
    );
    let before = calls.load(Ordering::SeqCst);
    assert!(before >= 1);
    let unlabelled = pods
        .create(&dry_run, &pod("unlabelled", false))
        .await
        .expect("an unlabelled Pod is admitted");
    assert!(
        !unlabelled
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("skillport.dev/mutated"),
        "the objectSelector keeps the webhook off unlabelled Pods"
    );
    assert_eq!(calls.load(Ordering::SeqCst), before, "not even called");

    webhooks
        .delete("skillport-probe", &DeleteParams::default())
        .await
        .expect("deleting the webhook configuration");
    drop(server);
}

/// Adds annotation `skillport.dev/mutated: yes` with a JSON Patch; counts its calls.
fn webhook_router(calls: Arc<AtomicUsize>) -> axum::Router {
    axum::Router::new().route(
        "/mutate",
        post({
            // axum's `json` feature is off in the workspace; the AdmissionReview is small.
            move |body: bytes::Bytes| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let review: Value = serde_json::from_slice(&body).expect("an AdmissionReview");
                let patch = json!([{
                    "op": "add",
                    "path": "/metadata/annotations/skillport.dev~1mutated",
                    "value": "yes",
                }]);
                let answer = json!({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": true,
                        "patchType": "JSONPatch",
                        "patch": BASE64.encode(patch.to_string()),
                    },
                });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    answer.to_string(),
                )
            }
        }),
    )
}

/// Sends CREATE of labelled Pods in `namespace` to `server`, trusting the cluster's CA.
fn webhook_configuration(
    server: &TlsServer,
    cluster: &Cluster,
    namespace: &str,
) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": "skillport-probe"},
        "webhooks": [{
            "name": "probe.skillport.test",
            "clientConfig": {
                "url": format!("{}/mutate", server.url()),
                "caBundle": BASE64.encode(cluster.ca().ca_pem()),
            },
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
            }],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "objectSelector": {"matchLabels": {"skillport.dev/inject": "yes"}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
        }],
    }))
    .expect("a valid webhook configuration")
}

async fn controller_manager_turns_a_deployment_into_pods(cluster: &Cluster) {
    let namespace = cluster.create_namespace("deploy").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "127.0.0.1:5000/agent:v1"}]},
            },
        },
    }))
    .expect("a valid Deployment");
    Api::<Deployment>::namespaced(cluster.client(), &namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("creating the Deployment");
    let pods = Api::<Pod>::namespaced(cluster.client(), &namespace);
    let listed = eventually("two Pods from the Deployment's ReplicaSet", || async {
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .ok()?;
        (list.items.len() == 2).then_some(list.items)
    })
    .await;
    for pod in &listed {
        let owner = pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|owners| owners.first())
            .expect("a Pod made by a ReplicaSet names it");
        assert_eq!(owner.kind, "ReplicaSet");
    }
    // No node: the scheduler can only say so, which it does on each Pod.
    eventually("the scheduler marks the Pods Unschedulable", || async {
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .ok()?;
        list.items
            .iter()
            .all(|pod| {
                pod.status
                    .as_ref()
                    .and_then(|status| status.conditions.as_ref())
                    .is_some_and(|conditions| {
                        conditions.iter().any(|condition| {
                            condition.type_ == "PodScheduled"
                                && condition.status == "False"
                                && condition.reason.as_deref() == Some("Unschedulable")
                        })
                    })
            })
            .then_some(())
    })
    .await;
}

// ------------------------------------------------------------------------------------------------

/// Polls `check` until it returns `Some`, for at most [`TIMEOUT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => panic!("expected an answer from the API server, got: {other}"),
    }
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn volume_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .map(|volume| volume.name.clone())
        .collect()
}

fn mount_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .flat_map(|container| container.volume_mounts.iter().flatten())
        .map(|mount| mount.name.clone())
        .collect()
}

//! The real API server: it takes the committed CRD and enforces it, and it takes what
//! `translate` makes.
//!
//! One cluster for all of it (see skillport-testkit's `tests/k8s_cluster.rs`: nextest runs each
//! test in its own process, and a control plane costs ~3 s and two busy cores to start), so the
//! server-side checks are one test running named checks one after another, each walking its
//! fixture files and reporting every case that went wrong at once, by file name.
//!
//! Fixtures: `tests/fixtures/skillsets/valid/*.yaml` hold a `spec` the server must accept;
//! `tests/fixtures/skillsets/invalid/*.yaml` hold a `spec` and `expect: {path, message}`: the
//! field path the server names and the message of the rule that caught it. A new case is a new
//! file. Translate's fixtures are `tests/fixtures/translate/*.yaml` (see `tests/translate.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec, SecurityContext,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSetSpec;
use skillport_operator::crd::{CRD_PATH, crd_yaml};
use skillport_testkit::{Cluster, ClusterOptions};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures(kind: &str) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/skillsets")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("reading a fixture");
            let value: Value = serde_saphyr::from_str(&text)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, value)
        })
        .collect()
}

#[test]
fn committed_crd_matches_the_types() {
    let path = workspace_root().join(CRD_PATH);
    let generated = crd_yaml();
    if std::env::var_os("SKILLPORT_UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).expect("writing the CRD");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{CRD_PATH} is out of date with src/api.rs\n\
         hint: run `cargo run -p skillport-operator -- crd > {CRD_PATH}` (or this test with \
         SKILLPORT_UPDATE_CRD=1) and commit the result"
    );
}

#[test]
fn valid_fixtures_read_as_typed_specs() {
    for (name, fixture) in fixtures("valid") {
        let spec: Result<SkillSetSpec, _> = serde_json::from_value(fixture["spec"].clone());
        assert!(spec.is_ok(), "{name}: {:?}", spec.err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_takes_the_crd_and_what_translate_makes() {
    let cluster = Cluster::start(ClusterOptions::default().feature_gate("ImageVolume", true)).await;
    install_crd(&cluster).await;
    skill_sets_are_validated_by_schema_and_cel(&cluster).await;
    translated_workloads_are_stored_as_made(&cluster).await;
    our_init_containers_pass_the_restricted_pod_security_standard(&cluster).await;
}

async fn skill_sets_are_validated_by_schema_and_cel(cluster: &Cluster) {
    let namespace = cluster.create_namespace("skillsets").await;
    let skill_sets = Api::<DynamicObject>::namespaced_with(
        cluster.client(),
        &namespace,
        &ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("skillport.dev", "v1alpha1", "SkillSet"),
            "skillsets",
        ),
    );
    let mut failures = Vec::new();

    for (name, fixture) in fixtures("valid") {
        match skill_sets
            .create(&PostParams::default(), &object(&name, &fixture))
            .await
        {
            Ok(stored) => {
                // What the server stored (defaults applied) reads back as the typed spec.
                if let Err(err) =
                    serde_json::from_value::<SkillSetSpec>(stored.data["spec"].clone())
                {
                    failures.push(format!("valid/{name}: stored spec does not parse: {err}"));
                }
            }
            Err(err) => failures.push(format!("valid/{name}: rejected: {}", message(&err))),
        }
    }

    for (name, fixture) in fixtures("invalid") {
        let path = fixture["expect"]["path"].as_str().expect("expect.path");
        let wanted = fixture["expect"]["message"]
            .as_str()
            .expect("expect.message");
        match skill_sets
            .create(&PostParams::default(), &object(&name, &fixture))
            .await
        {
            Ok(_) => failures.push(format!("invalid/{name}: accepted")),
            Err(err) => {
                let got = message(&err);
                let code = match &err {
                    kube::Error::Api(status) => status.code,
                    _ => 0,
                };
                // The server prefixes each cause with its field path: `spec.skills[0].name: …`.
                let names_the_field = got.contains(&format!("{path}: "));
                if code != 422 || !names_the_field || !got.contains(wanted) {
                    failures.push(format!(
                        "invalid/{name}: expected 422 at `{path}` saying `{wanted}`, got {code}: {got}"
                    ));
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every template translate makes, as a Deployment, is stored as made: no field dropped (an
/// `image` volume or its mount would vanish silently on a server without the gate), and the plan
/// ConfigMap is a valid ConfigMap.
async fn translated_workloads_are_stored_as_made(cluster: &Cluster) {
    let namespace = cluster.create_namespace("translated").await;
    let deployments = Api::<Deployment>::namespaced(cluster.client(), &namespace);
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client(), &namespace);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, case) in common::all() {
        let Ok(resources) = case.translate() else {
            continue;
        };
        checked += 1;
        let template = labelled(resources.apply(&case.template), &name);
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"fixture": name}},
                "template": template,
            },
        }))
        .expect("a Deployment");
        match deployments
            .create(&PostParams::default(), &deployment)
            .await
        {
            Ok(stored) => {
                let stored_spec = stored.spec.and_then(|spec| spec.template.spec);
                let made = template.spec.clone().expect("a pod spec");
                let stored_spec = stored_spec.expect("a stored pod spec");
                if stored_spec.volumes != made.volumes {
                    failures.push(format!(
                        "{name}: volumes changed when stored: made {} stored {}",
                        json!(made.volumes),
                        json!(stored_spec.volumes)
                    ));
                }
                let mounts = |spec: &PodSpec| -> Vec<_> {
                    spec.containers
                        .iter()
                        .chain(spec.init_containers.iter().flatten())
                        .map(|c| (c.name.clone(), c.volume_mounts.clone(), c.env.clone()))
                        .collect()
                };
                if mounts(&stored_spec) != mounts(&made) {
                    failures.push(format!("{name}: mounts or env changed when stored"));
                }
            }
            Err(err) => failures.push(format!("{name}: Deployment refused: {}", message(&err))),
        }
        if let Some(plan) = &resources.plan {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(plan.name.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(plan.data.clone()),
                ..ConfigMap::default()
            };
            // Fixtures share SkillSet names, hence plan names: a dry run is enough.
            if let Err(err) = config_maps.create(&dry_run(), &config_map).await {
                failures.push(format!("{name}: plan ConfigMap refused: {}", message(&err)));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} translate fixtures translated"
    );
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// In a namespace that enforces the `restricted` Pod Security Standard, a Pod made from each
/// translated template is admitted once the fixture's own containers are made compliant: what we
/// add (init containers, volume types) needs no exemption.
async fn our_init_containers_pass_the_restricted_pod_security_standard(cluster: &Cluster) {
    let namespace = cluster.create_namespace("restricted").await;
    let label = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    Api::<Namespace>::all(cluster.client())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("labelling the namespace restricted");
    let pods = Api::<Pod>::namespaced(cluster.client(), &namespace);
    let mut failures = Vec::new();
    for (name, case) in common::all() {
        let Ok(resources) = case.translate() else {
            continue;
        };
        let mut template = resources.apply(&case.template);
        let spec = template.spec.as_mut().expect("a pod spec");
        let ours = |container: &Container| {
            container.name == "skillport-fetch" || container.name == "skillport-verify"
        };
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            if !ours(container) {
                container.security_context = Some(restricted());
            }
        }
        // The fixture's ServiceAccount does not exist here; the policy does not look at it.
        spec.service_account_name = None;
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..template.metadata.unwrap_or_default()
            },
            spec: template.spec,
            ..Pod::default()
        };
        if let Err(err) = pods.create(&dry_run(), &pod).await {
            failures.push(format!("{name}: {}", message(&err)));
        }
        // The control: without our security context the same Pod is refused, so the policy
        // really was enforced above (where we add an init container at all).
        if resources.init_containers.is_empty() {
            continue;
        }
        let spec = pod.spec.as_mut().expect("a pod spec");
        for container in spec
            .init_containers
            .iter_mut()
            .flatten()
            .filter(|c| ours(c))
        {
            container.security_context = None;
        }
        match pods.create(&dry_run(), &pod).await {
            Ok(_) => failures.push(format!("{name}: admitted without our security context")),
            Err(err) if message(&err).contains("violates PodSecurity \"restricted:latest\"") => {}
            Err(err) => failures.push(format!("{name}: control refused oddly: {}", message(&err))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn restricted() -> SecurityContext {
    serde_json::from_value(json!({
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }))
    .expect("a security context")
}

fn labelled(mut template: PodTemplateSpec, fixture: &str) -> PodTemplateSpec {
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert("fixture".to_owned(), fixture.to_owned());
    template
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: None,
    }
}

/// Creates the committed CRD (the file users apply, not the in-memory one) and waits until it is
/// Established: creation is where the API server refuses rules over its CEL cost budget.
async fn install_crd(cluster: &Cluster) {
    let text = std::fs::read_to_string(workspace_root().join(CRD_PATH)).expect("reading the CRD");
    let all: Vec<CustomResourceDefinition> =
        serde_saphyr::from_str_multiple(&text).expect("the CRDs parse");
    let crds = Api::<CustomResourceDefinition>::all(cluster.client());
    for crd in &all {
        crds.create(&PostParams::default(), crd)
            .await
            .unwrap_or_else(|err| panic!("the API server refused the CRD: {}", message(&err)));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let established = crds
            .get("skillsets.skillport.dev")
            .await
            .ok()
            .and_then(|crd| crd.status)
            .and_then(|status| status.conditions)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return;
        }
        assert!(Instant::now() < deadline, "the CRD was never Established");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn object(name: &str, fixture: &Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "SkillSet",
        "metadata": {"name": name},
        "spec": fixture["spec"],
    }))
    .expect("a SkillSet object")
}

fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => format!("not an answer from the API server: {other}"),
    }
}

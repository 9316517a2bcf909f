//! The SkillSet CRD: the committed YAML matches the types, and the real API server enforces it.
//!
//! One cluster for the whole table (see skillport-testkit's `tests/k8s_cluster.rs`: nextest runs
//! each test in its own process, and a control plane costs ~3 s and two busy cores to start), so
//! the server-side checks are one test that walks the fixture files and reports every case that
//! went wrong at once, by file name.
//!
//! Fixtures: `tests/fixtures/skillsets/valid/*.yaml` hold a `spec` the server must accept;
//! `tests/fixtures/skillsets/invalid/*.yaml` hold a `spec` and `expect: {path, message}`: the
//! field path the server names and the message of the rule that caught it. A new case is a new
//! file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
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
async fn the_api_server_enforces_the_crd() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    install_crd(&cluster).await;
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

/// Creates the committed CRD (the file users apply, not the in-memory one) and waits until it is
/// Established: creation is where the API server refuses rules over its CEL cost budget.
async fn install_crd(cluster: &Cluster) {
    let text = std::fs::read_to_string(workspace_root().join(CRD_PATH)).expect("reading the CRD");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("the CRD parses");
    let crds = Api::<CustomResourceDefinition>::all(cluster.client());
    crds.create(&PostParams::default(), &crd)
        .await
        .unwrap_or_else(|err| panic!("the API server refused the CRD: {}", message(&err)));
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

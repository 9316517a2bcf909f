//! The admission endpoints over real HTTPS, fed AdmissionReview fixtures from
//! `tests/fixtures/admission/` (as the API server sends them): the patched Pods are snapshot
//! and validated with kubernetes-validate; denials name their fields; hostile bodies (truncated
//! JSON, 10 MB, wrong kind, wrong version, no request, deep nesting) get a clean answer and the
//! server stays up. SkillSets are read from a real API server (etcd + kube-apiserver), their
//! status written here as the operator would.

mod support;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;
use skillport_operator::translate::Options;
use skillport_operator::webhook::{self, admission};
use skillport_testkit::{Cluster, Registry};
use support::*;

const PDF: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const REVIEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A SkillSet as the operator leaves it: resolved to fixed digests, Ready, in `delivery`.
async fn resolved_skill_set(api: &Api<SkillSet>, name: &str, extra: &Value, delivery: &str) {
    api.create(
        &PostParams::default(),
        &skill_set(name, "registry.example", extra),
    )
    .await
    .unwrap();
    let status = json!({"status": {
        "observedGeneration": 1,
        "delivery": delivery,
        "skills": [{"name": "pdf", "digest": PDF}, {"name": "review", "digest": REVIEW}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Resolved", "message": "test",
            "observedGeneration": 1, "lastTransitionTime": "2026-12-02T06:00:00Z",
        }],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

struct Server {
    client: reqwest::Client,
    base: String,
}

impl Server {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let answer = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Posts a review that must be answered 200 with the request's uid; its `response`.
    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review.to_string()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1", "{body}");
        assert_eq!(body["kind"], "AdmissionReview", "{body}");
        assert_eq!(body["response"]["uid"], review["request"]["uid"], "{body}");
        body["response"].clone()
    }
}

/// The review's Pod with the response's JSON Patch applied.
fn patched(review: &Value, response: &Value) -> Value {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    // kube-core writes the patch's bytes as a JSON array of numbers; the API server (Go)
    // reads that as well as base64.
    let patch: Vec<u8> = match &response["patch"] {
        Value::String(base64) => base64::engine::general_purpose::STANDARD
            .decode(base64)
            .unwrap(),
        bytes => serde_json::from_value(bytes.clone()).unwrap(),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pod = review["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

fn with_label(review: &Value, skill_set: &str) -> Value {
    let mut review = review.clone();
    review["request"]["object"]["metadata"]["labels"]["skillport.dev/skillset"] = json!(skill_set);
    review
}

fn validate_with_kubernetes_validate(files: &[PathBuf]) {
    let validator = skillport_testkit::venv_tool("kubernetes-validate");
    for version in ["1.31.0", "1.37.0"] {
        let output = std::process::Command::new(&validator)
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("running kubernetes-validate");
        assert!(
            output.status.success(),
            "kubernetes-validate -k {version}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_over_https_patch_deny_and_survive_hostile_bodies() {
    log_to_test_output();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::start_default().await;
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment_manifest("agent"))
        .await
        .unwrap();
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    resolved_skill_set(&skill_sets, "tools", &json!({}), "ImageVolume").await;
    resolved_skill_set(&skill_sets, "fetched", &json!({}), "InitContainer").await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set(
                "strict",
                "registry.example",
                &json!({"failurePolicy": "Fail"}),
            ),
        )
        .await
        .unwrap();

    let files = WebhookFiles::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (admission_state, cache) =
        admission::Admission::start(admin.clone(), Options::new(INIT_IMAGE), "skillport");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(webhook::serve(
        tcp,
        files.serving.tls.clone(),
        webhook::with_echo(admission::router(admission_state)),
        async {
            let _ = stopped.await;
        },
    ));
    let server = Server {
        client: reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(files.ca.ca_pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap(),
        base: format!("https://127.0.0.1:{port}"),
    };

    labelled_pods_are_patched(&server).await;
    policies_and_validation(&server).await;
    hostile_bodies(&server).await;
    stalled_bodies_hold_no_budget(&server).await;
    a_half_read_body_never_waits_for_more_budget(&server).await;

    stop.send(()).unwrap();
    drop(server);
    serving.await.unwrap().unwrap();
    cache.abort();
}

/// Labelled Pods, in both deliveries: patched, snapshot, valid for Kubernetes 1.31 and 1.37;
/// an injected Pod sent again is left alone.
async fn labelled_pods_are_patched(server: &Server) {
    let out = tempfile::tempdir().unwrap();
    let mut validated = Vec::new();
    for name in ["pod-image-volume", "pod-init-container"] {
        let review = fixture(&format!("{name}.json"));
        let response = server.review(admission::MUTATE_PODS, &review).await;
        let pod = patched(&review, &response);
        insta::assert_snapshot!(name, serde_saphyr::to_string(&pod).unwrap());
        let path = out.path().join(format!("{name}.json"));
        std::fs::write(&path, pod.to_string()).unwrap();
        validated.push(path);
        let mut again = review.clone();
        again["request"]["object"] = pod;
        let response = server.review(admission::MUTATE_PODS, &again).await;
        assert_eq!(response["allowed"], true, "{name} again: {response}");
        assert!(
            response.get("patch").is_none(),
            "{name} again: no patch: {response}"
        );
    }
    validate_with_kubernetes_validate(&validated);
}

/// Not ready with failurePolicy Fail: denied; missing: admitted with a warning. A SkillSet with
/// nested mount paths: denied naming the field; its missing pull secret: a warning.
async fn policies_and_validation(server: &Server) {
    let pod = fixture("pod-image-volume.json");
    let response = server
        .review(admission::MUTATE_PODS, &with_label(&pod, "strict"))
        .await;
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("failurePolicy: Fail"), "{message}");
    let response = server
        .review(admission::MUTATE_PODS, &with_label(&pod, "nowhere"))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("patch").is_none(), "{response}");
    let empty = server
        .review(admission::MUTATE_PODS, &with_label(&pod, ""))
        .await;
    assert_eq!(
        empty["allowed"], true,
        "an empty label names no SkillSet: {empty}"
    );
    assert!(empty.get("warnings").is_some(), "{empty}");
    let warnings = response["warnings"].to_string();
    assert!(
        warnings.contains("agents/nowhere") && warnings.contains("does not exist"),
        "{warnings}"
    );

    let review = fixture("skillset-overlapping.json");
    let response = server.review(admission::VALIDATE_SKILL_SETS, &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 422, "{response}");
    let fields: Vec<&str> = response["status"]["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cause| cause["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.skills[1].mountPath"], "{response}");
    assert!(
        response["warnings"].to_string().contains("not-made-yet"),
        "a missing pull secret is a warning: {response}"
    );
}

/// Clients that declare the largest body and send none of it (issue 22, item 13): the budget is
/// taken as bytes arrive, so a real review is answered at once beside them — not after their
/// 10 s each (as before), past the API server's 5 s timeout (then `failurePolicy: Fail` refuses Pods).
async fn stalled_bodies_hold_no_budget(server: &Server) {
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let request = server
                .client
                .post(format!("{}{}", server.base, admission::MUTATE_PODS))
                .header("content-type", "application/json")
                .header("content-length", webhook::MAX_BODY.to_string())
                .body(reqwest::Body::wrap_stream(futures_util::stream::pending::<
                    Result<Vec<u8>, std::io::Error>,
                >()));
            tokio::spawn(request.send())
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let review = fixture("pod-image-volume.json");
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        server.review(admission::MUTATE_PODS, &review),
    )
    .await;
    for request in &stalled {
        request.abort();
    }
    let response = answered.expect(
        "a review waited behind requests that declared 3 MiB and sent nothing, past the API \
         server's 5 s timeout",
    );
    assert_eq!(response["allowed"], true, "{response}");
}

/// Two large bodies each half sent: the second, holding some of the budget, is answered 503 at
/// once when it needs more than is free, rather than wait for the first (which would wait for
/// it in turn); the first is cut at its pause, and the server answers after.
async fn a_half_read_body_never_waits_for_more_budget(server: &Server) {
    let half_sent = |bytes: usize| {
        let body = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, std::io::Error>(vec![b' '; bytes])]),
            futures_util::stream::pending(),
        );
        server
            .client
            .post(format!("{}{}", server.base, admission::MUTATE_PODS))
            .header("content-type", "application/json")
            .header("content-length", webhook::MAX_BODY.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
    };
    let first = tokio::spawn(half_sent(2 << 20));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), half_sent(2 << 20))
        .await
        .expect("the second body was answered at once")
        .expect("an answer");
    assert_eq!(second.status().as_u16(), 503, "busy: try again");
    assert!(second.text().await.unwrap().contains("try again"));
    let first = first.await.unwrap().expect("an answer");
    assert_eq!(
        first.status().as_u16(),
        408,
        "the first is cut at its pause"
    );
    let review = fixture("pod-image-volume.json");
    assert_eq!(
        server.review(admission::MUTATE_PODS, &review).await["allowed"],
        true
    );
}

/// Wrong kind, truncated, empty, old version, no request, deep nesting, 10 MB: a clean answer
/// each, and the server still answers.
async fn hostile_bodies(server: &Server) {
    let pod = fixture("pod-image-volume.json");
    let deployment = fixture("deployment.json");
    let response = server.review(admission::MUTATE_PODS, &deployment).await;
    assert_eq!(response["allowed"], false, "wrong kind: {response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("apps/v1 Deployment"),
        "wrong kind: {response}"
    );
    let text = pod.to_string();
    let mut old_version = pod.clone();
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_request = pod.clone();
    no_request.as_object_mut().unwrap().remove("request");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (what, body, expected) in [
        (
            "truncated",
            text[..text.len() / 2].to_owned(),
            "not an AdmissionReview",
        ),
        ("empty", String::new(), "not an AdmissionReview"),
        ("v1beta1", old_version.to_string(), "admission.k8s.io/v1"),
        ("no request", no_request.to_string(), "no request"),
        ("deeply nested", deep, "not an AdmissionReview"),
    ] {
        let (status, body) = server.post(admission::MUTATE_PODS, body).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["response"]["allowed"], false, "{what}: {body}");
        let message = body["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(expected), "{what}: {message}");
    }
    let (status, _) = server
        .post(admission::MUTATE_PODS, vec![b' '; 10 << 20])
        .await;
    assert_eq!(status, 413, "10 MB: refused before it is read");
    let (status, body) = server.post("/echo", "still up").await;
    assert_eq!((status, body), (200, Value::String("still up".into())));
}

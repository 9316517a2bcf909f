//! The Helm chart in `charts/skillport/` against the kustomize install in `deploy/`: it lints, and
//! with default values renders the same objects (less the Namespace, plus Helm's labels). Runs the
//! real `helm` and `kubectl` from `SKILLPORT_K8S_BIN` (`scripts/k8s-tools.sh` builds them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

/// The labels the chart adds to every object, besides deploy/'s `app.kubernetes.io/name`.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

const TENANTS: [&str; 2] = ["--set", "tenantNamespaces={team-a}"];

fn workspace() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a tool from SKILLPORT_K8S_BIN in the workspace root; its stdout, or a panic showing
/// both outputs.
fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(skillport_testkit::k8s_tool(tool))
        .current_dir(workspace())
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {tool}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}):\n--- stdout\n{stdout}--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `helm template` of the chart as release skillport in skillport-system, CRDs included.
fn helm_template(set: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "skillport", "charts/skillport"];
    args.extend(["--namespace", "skillport-system", "--include-crds"]);
    args.extend(set);
    parse(&run("helm", &args), "helm template")
}

/// `helm template` with `--set set` fails, saying `message`.
fn helm_refuses(set: &str, message: &str) {
    let output = Command::new(skillport_testkit::k8s_tool("helm"))
        .current_dir(workspace())
        .args(["template", "skillport", "charts/skillport", "--set", set])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(message),
        "--set {set}: {stderr}"
    );
}

fn parse(yaml: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|err| panic!("{what} printed YAML that does not parse: {err}"))
}

/// The objects by (kind, name).
fn by_kind_and_name(objects: Vec<Value>) -> BTreeMap<(String, String), Value> {
    objects
        .into_iter()
        .map(|object| {
            let key = (
                object["kind"].as_str().unwrap_or_default().to_owned(),
                object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            (key, object)
        })
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str, namespace: Option<&str>) -> &'a Value {
    objects
        .iter()
        .find(|object| {
            object["kind"] == kind
                && object["metadata"]["name"] == name
                && object["metadata"]["namespace"].as_str() == namespace
        })
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name} in namespace {namespace:?}"))
}

#[test]
fn lints() {
    run("helm", &["lint", "--strict", "charts/skillport"]);
    run(
        "helm",
        &[
            "lint",
            "--strict",
            "charts/skillport",
            "--set",
            "tenantNamespaces={a,b}",
            "--set",
            "defaultServiceAccount=agents-bot",
        ],
    );
    run(
        "helm",
        &[
            "lint",
            "--strict",
            "charts/skillport",
            "--set",
            "webhook.enabled=false",
        ],
    );
}

#[test]
fn without_cert_manager_the_ca_bundle_is_required_and_set() {
    let objects = helm_template(&[
        "--set",
        "webhook.certManager=false",
        "--set",
        "webhook.caBundle=Zm9v",
    ]);
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "Certificate" || o["kind"] == "Issuer"),
        "webhook.certManager=false still renders cert-manager objects"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let configuration = find(&objects, kind, "skillport", None);
        assert_eq!(
            configuration["webhooks"][0]["clientConfig"]["caBundle"], "Zm9v",
            "{kind}"
        );
        assert!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_null(),
            "{kind} keeps cert-manager's annotation"
        );
    }
    helm_refuses("webhook.certManager=false", "webhook.caBundle is required");
}

#[test]
fn webhook_disabled_renders_no_webhook() {
    let objects = helm_template(&["--set", "webhook.enabled=false"]);
    let text = serde_json::to_string(&objects).unwrap();
    assert!(
        !text.contains("webhook"),
        "webhook.enabled=false still renders: {text}"
    );
}

/// The opt-in NetworkPolicy: the webhook port only from the peers given (the API server), the
/// metrics port only from its own; enabled without webhook peers is refused, naming the value.
#[test]
fn network_policy_lets_only_the_named_peers_reach_the_webhook() {
    assert!(
        !helm_template(&[])
            .iter()
            .any(|o| o["kind"] == "NetworkPolicy")
    );
    let objects = helm_template(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
    ]);
    let policy = find(
        &objects,
        "NetworkPolicy",
        "skillport-operator",
        Some("skillport-system"),
    );
    let deployment = find(
        &objects,
        "Deployment",
        "skillport-operator",
        Some("skillport-system"),
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "webhook", "protocol": "TCP"}],
                "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}]),
        "only the webhook port, only from the API server's block (no metricsFrom: no metrics)"
    );
    helm_refuses(
        "networkPolicy.enabled=true",
        "networkPolicy.webhookFrom is required",
    );
}

/// `image.digest` pins the operator image (the tag is then unused); a digest that is not one
/// is refused by the values schema.
#[test]
fn image_digest_pins_the_operator_image() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let objects = helm_template(&["--set", &format!("image.digest={digest}")]);
    let deployment = find(
        &objects,
        "Deployment",
        "skillport-operator",
        Some("skillport-system"),
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/skillport/skillport-operator@{digest}")
    );
    helm_refuses("image.digest=latest", "digest");
}

/// The webhook's failurePolicy is Fail by default, so its availability is the labelled Pods':
/// two replicas spread over nodes and a PodDisruptionBudget, unless one replica is asked for.
#[test]
fn two_replicas_spread_over_nodes_with_a_disruption_budget_by_default() {
    let objects = helm_template(&[]);
    let deployment = find(
        &objects,
        "Deployment",
        "skillport-operator",
        Some("skillport-system"),
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname", "{spread}");
    let budget = find(
        &objects,
        "PodDisruptionBudget",
        "skillport-operator",
        Some("skillport-system"),
    );
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let one = helm_template(&["--set", "replicas=1"]);
    assert!(
        !one.iter().any(|o| o["kind"] == "PodDisruptionBudget"),
        "one replica: a budget of one would block every drain"
    );
}

#[test]
fn default_values_render_what_deploy_renders() {
    let mut helm = helm_template(&[]);
    for object in &mut helm {
        // Not `object["metadata"]["labels"]`: indexing mutably adds the key (as null) when missing.
        if let Some(labels) = object
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for label in HELM_LABELS {
                labels.remove(label);
            }
        }
    }
    let mut kustomize = parse(
        &run("kubectl", &["kustomize", "deploy/"]),
        "kubectl kustomize",
    );
    kustomize.retain(|object| object["kind"] != "Namespace");
    let (helm, kustomize) = (by_kind_and_name(helm), by_kind_and_name(kustomize));

    let keys: BTreeSet<&(String, String)> = helm.keys().chain(kustomize.keys()).collect();
    if let Some(key) = keys
        .into_iter()
        .find(|key| helm.get(*key) != kustomize.get(*key))
    {
        let show = |object: Option<&Value>| {
            object.map_or("(none)".to_owned(), |object| {
                serde_json::to_string_pretty(object).unwrap()
            })
        };
        let (kind, name) = key;
        panic!(
            "the chart's {kind} {name} (Helm labels removed) differs from deploy/'s:\n\
             --- helm template\n{}\n--- kubectl kustomize deploy/\n{}",
            show(helm.get(key)),
            show(kustomize.get(key))
        );
    }
}

#[test]
fn tenant_namespaces_get_the_account_bound_to_skillport_tenant_and_the_operator_reads_no_secret() {
    let objects = helm_template(&TENANTS);

    // The operator's own rights: no Secrets, no ConfigMaps, no workload patches anywhere.
    let operator = find(&objects, "ClusterRole", "skillport-operator", None);
    let rules = operator["rules"]
        .as_array()
        .expect("the ClusterRole has rules");
    for rule in rules {
        let resources = rule["resources"].as_array().unwrap();
        let verbs = rule["verbs"].as_array().unwrap();
        for resource in ["secrets", "configmaps"] {
            assert!(
                !resources.iter().any(|r| r == resource),
                "the ClusterRole skillport-operator has a rule on {resource}: {rule}"
            );
        }
        if resources.iter().any(|r| r == "deployments") {
            assert!(
                !verbs.iter().any(|v| v == "patch" || v == "get"),
                "the operator may get or patch Deployments itself: {rule}"
            );
        }
    }

    assert!(
        !rules.iter().any(|rule| rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "impersonate")),
        "the operator may impersonate in every namespace: {rules:?}"
    );
    let impersonation = find(
        &objects,
        "RoleBinding",
        "skillport-operator",
        Some("team-a"),
    );
    assert_eq!(impersonation["roleRef"]["name"], "skillport-impersonator");
    assert_eq!(
        impersonation["subjects"][0]["name"], "skillport-operator",
        "{impersonation}"
    );
    let account = find(&objects, "ServiceAccount", "skillport", Some("team-a"));
    assert_eq!(account["metadata"]["namespace"], "team-a");
    let binding = find(&objects, "RoleBinding", "skillport-tenant", Some("team-a"));
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "skillport-tenant",
        }),
        "the RoleBinding in team-a binds the wrong role"
    );
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{
            "kind": "ServiceAccount",
            "name": "skillport",
            "namespace": "team-a",
        }]),
        "the RoleBinding in team-a binds the wrong subjects (want team-a's skillport account)"
    );
}

#[test]
fn the_chart_crd_is_deploy_crd() {
    let chart = workspace().join("charts/skillport/crds/skillsets.skillport.dev.yaml");
    let deploy = workspace().join("deploy/crd.yaml");
    let read = |path: &PathBuf| {
        std::fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
    };
    assert!(
        read(&chart) == read(&deploy),
        "charts/skillport/crds/skillsets.skillport.dev.yaml differs from deploy/crd.yaml: \
         copy deploy/crd.yaml to charts/skillport/crds/ when it changes"
    );
}

/// `scripts/images.sh` (the README's cluster quick start) builds both images from the static
/// binaries without Docker, pushes them, prints their digests (the same on a second run) and
/// writes an overlay in which deploy/'s operator runs its image and names its init image, both
/// pinned by digest.
#[test]
fn the_images_script_pushes_both_images_and_pins_deploy_to_them() {
    let static_bin = std::env::var_os("SKILLPORT_STATIC_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .expect("SKILLPORT_STATIC_BIN (scripts/test.sh builds the static binaries)");
    let registry = skillport_testkit::Registry::plain();
    let out = tempfile::tempdir().unwrap();
    let bin_dir = skillport_testkit::k8s_bin_dir();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let target = format!("{}/skillport", registry.host());
    let images = || {
        let output = Command::new(workspace().join("scripts/images.sh"))
            .arg(&target)
            .arg(out.path())
            .env("PATH", &path)
            .env("CRANE_FLAGS", "--insecure")
            .env("SKILLPORT_IMAGE_BINARIES", static_bin.parent().unwrap())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "images.sh failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let first = images();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first[0].starts_with(&format!("{target}/skillport@sha256:")),
        "{first:?}"
    );
    assert!(
        first[1].starts_with(&format!("{target}/skillport-operator@sha256:")),
        "{first:?}"
    );
    assert_eq!(images(), first, "the same binaries give the same digests");

    let rendered = parse(
        &run("kubectl", &["kustomize", &out.path().display().to_string()]),
        "kubectl kustomize",
    );
    let deployment = find(
        &rendered,
        "Deployment",
        "skillport-operator",
        Some("skillport-system"),
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], first[1].as_str());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&format!("--init-image={}", first[0]).as_str()),
        "{args:?}"
    );
    // The Helm values written beside the overlay pin the chart to the same two images.
    let values = out.path().join("values.yaml");
    let charted = helm_template(&["-f", &values.display().to_string()]);
    let deployment = find(
        &charted,
        "Deployment",
        "skillport-operator",
        Some("skillport-system"),
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], first[1].as_str());
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("--init-image={}", first[0]))),
        "{container}"
    );

    let config: Value =
        serde_json::from_str(&run("crane", &["config", "--insecure", &first[0]])).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/skillport"])
    );
    assert_eq!(config["os"], "linux");
}

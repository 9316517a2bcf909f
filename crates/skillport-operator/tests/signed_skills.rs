//! Skill policies on a real API server (issue 17): the operator delivers only digests the
//! policies accept, fail closed. The SkillSet's author is `alice`, a ServiceAccount allowed to
//! write SkillSets and nothing else; the operator runs as deploy/'s ServiceAccount with
//! deploy/'s RBAC; images live in a TLS + basic-auth registry and are signed as cosign signs.
//!
//! 1. A ClusterSkillPolicy requires the release key for the registry's skills: an unsigned
//!    skill never reaches the pod template, and the SkillSet says which skill, digest and rule
//!    (`Resolved=False NotVerified`, a Warning Event).
//! 2. Signed, it is delivered: `Verified=True`, the signer in `status.skills`.
//! 3. The tag moves to an unsigned digest: the verified digest stays (`Verified=False
//!    HeldBack`), the template keeps it.
//! 4. A namespace's SkillPolicy adds a second key (read as the namespace's account): the skill
//!    signed by one key only is no longer delivered; signed by both, it is.
//! 5. `Audit`: the unsigned digest is delivered and reported (`Verified=False PolicyAudit`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_sign::PrivateKey;
use skillport_testkit::{Cluster, Registry};

mod support;

use support::*;

/// Alice: may write SkillSets in NAMESPACE, nothing else (checked with `kubectl auth can-i`).
async fn alice(cluster: &Cluster, admin: &kube::Client) -> Api<SkillSet> {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "skillset-author", "namespace": NAMESPACE},
        "rules": [{"apiGroups": ["skillport.dev"], "resources": ["skillsets"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}],
    });
    apply(
        admin,
        "rbac.authorization.k8s.io/v1",
        "Role",
        Some(NAMESPACE),
        role,
    )
    .await;
    grant_tenant_role(admin, "alice", "skillset-author").await;
    for (verb, resource, expected) in [
        ("create", "skillsets.skillport.dev", "yes"),
        ("create", "skillpolicies.skillport.dev", "no"),
        ("get", "secrets", "no"),
        ("patch", "deployments.apps", "no"),
    ] {
        let output = cluster
            .kubectl()
            .args(["auth", "can-i", verb, resource, "-n", NAMESPACE])
            .arg(format!("--as=system:serviceaccount:{NAMESPACE}:alice"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "may alice {verb} {resource}?"
        );
    }
    Api::namespaced(
        cluster.service_account(NAMESPACE, "alice").await.client,
        NAMESPACE,
    )
}

async fn grant_tenant_role(admin: &kube::Client, account: &str, role: &str) {
    apply(
        admin,
        "v1",
        "ServiceAccount",
        Some(NAMESPACE),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": account, "namespace": NAMESPACE}}),
    )
    .await;
    apply(
        admin,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Some(NAMESPACE),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{account}-{role}"), "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
        }),
    )
    .await;
}

/// The digest of `skill`'s image in the Deployment's pod template, if any.
async fn delivered(deployments: &Api<Deployment>, skill: &str) -> Option<String> {
    let deployment = deployments.get("agent").await.unwrap();
    volume_reference(&deployment, &format!("skill-{skill}"))
        .map(|reference| reference.rsplit_once('@').unwrap().1.to_owned())
}

/// The release key and the team's, the same in every step of the test run.
fn keys() -> (&'static PrivateKey, &'static PrivateKey) {
    static KEYS: std::sync::OnceLock<(PrivateKey, PrivateKey)> = std::sync::OnceLock::new();
    let (release, team) = KEYS.get_or_init(|| (PrivateKey::generate(), PrivateKey::generate()));
    (release, team)
}

async fn wait_delivered(deployments: &Api<Deployment>, skill: &str, digest: &str) {
    wait_for(
        &format!("{digest} in the template"),
        Duration::from_secs(30),
        || async {
            match delivered(deployments, skill).await {
                Some(found) if found == digest => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

async fn wait_verified(alice: &Api<SkillSet>, status: &str, reason: &str) -> (SkillSet, String) {
    let skill_set = wait_condition(alice, "signed", "Verified", status, reason).await;
    let (_, _, message) = condition(&skill_set, "Verified").unwrap();
    (skill_set, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_digests_the_skill_policies_accept_reach_the_pod_template() {
    log_to_test_output();
    let cluster = Cluster::start_default().await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    let host = registry.host();
    let (release, _) = keys();
    let unsigned = push_skill(&registry, work.path(), "pdf", "1", "pdf body").await;
    enforce_release_key(&admin, release, &host).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment_manifest("agent"))
        .await
        .unwrap();
    let alice = alice(&cluster, &admin).await;
    let operator = Operator::start(&cluster, &registry).await;

    // 1. Unsigned: never in the template; the SkillSet names the skill, the digest, the rule.
    let mut spec = skill_set(
        "signed",
        &host,
        &json!({
        "workloadRef": {"kind": "Deployment", "name": "agent"}, "delivery": "ImageVolume"}),
    );
    spec.spec.skills.truncate(1);
    alice.create(&PostParams::default(), &spec).await.unwrap();
    let (refused, message) = wait_verified(&alice, "False", "NotVerified").await;
    assert!(
        message.contains("skill \"pdf\"")
            && message.contains(&format!(
                "{unsigned} is not signed as ClusterSkillPolicy \"corp\" requires (1 of release)"
            )),
        "{message}"
    );
    assert_eq!(condition(&refused, "Resolved").unwrap().1, "NotVerified");
    assert!(refused.status.unwrap().skills.is_empty());
    assert_eq!(
        delivered(&deployments, "pdf").await,
        None,
        "an unsigned digest reached the template"
    );
    let events = events_for(&admin, "signed").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("NotVerified")
                && e.type_.as_deref() == Some("Warning")),
        "{events:?}"
    );

    // 2. Signed: delivered, with who signed it.
    let signed = sign_skill(&registry, work.path(), "pdf", "1", release).await;
    assert_eq!(signed, unsigned);
    let (verified, _) = wait_verified(&alice, "True", "Verified").await;
    let skills = verified.status.unwrap().skills;
    assert_eq!(
        skills[0].signers,
        vec!["ClusterSkillPolicy \"corp\", authority \"release\": key release".to_owned()]
    );
    wait_delivered(&deployments, "pdf", &signed).await;

    // 3. The tag moves to an unsigned digest: the verified one stays, and the SkillSet says so.
    let moved = push_skill(&registry, work.path(), "pdf", "1", "pdf body, changed").await;
    let (_, message) = wait_verified(&alice, "False", "HeldBack").await;
    assert!(
        message.contains(&format!("{moved} is not signed"))
            && message.contains(&format!("{signed}, verified before, stays")),
        "{message}"
    );
    assert_eq!(
        delivered(&deployments, "pdf").await.as_deref(),
        Some(signed.as_str())
    );

    namespace_adds_its_own_key(&admin, &registry, work.path(), &alice, &moved).await;
    audit_delivers_and_reports(&admin, &registry, work.path(), &alice, &deployments).await;
    operator.stop().await;
}

/// 4. The namespace adds its own key (a Secret of its own, read as its account): signed by the
///    release key alone is no longer enough; by both, it is.
async fn namespace_adds_its_own_key(
    admin: &kube::Client,
    registry: &Registry,
    work: &std::path::Path,
    alice: &Api<SkillSet>,
    moved: &str,
) {
    let (release, team) = keys();
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-key"},
                "stringData": {"cosign.pub": team.public_key().to_pem()}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let moved_signed = sign_skill(registry, work, "pdf", "1", release).await;
    assert_eq!(moved_signed, moved);
    apply(admin, "skillport.dev/v1alpha1", "SkillPolicy", Some(NAMESPACE), json!({
        "apiVersion": "skillport.dev/v1alpha1", "kind": "SkillPolicy",
        "metadata": {"name": "team", "namespace": NAMESPACE},
        "spec": {"authorities": [{"name": "team", "key": {"secret": "team-key", "key": "cosign.pub"}}]},
    })).await;
    let (_, message) = wait_verified(alice, "False", "NotVerified").await;
    assert!(
        message.contains(&format!("SkillPolicy \"{NAMESPACE}/team\" requires")),
        "{message}"
    );
    sign_skill(registry, work, "pdf", "1", team).await;
    let (verified, _) = wait_verified(alice, "True", "Verified").await;
    let skills = verified.status.unwrap().skills;
    assert_eq!(skills[0].digest.as_deref(), Some(moved));
    assert_eq!(
        skills[0].signers,
        vec![
            "ClusterSkillPolicy \"corp\", authority \"release\": key release".to_owned(),
            format!("SkillPolicy \"{NAMESPACE}/team\", authority \"team\": key team")
        ]
    );
}

/// 5. `Audit`: an unsigned digest is delivered, and reported.
async fn audit_delivers_and_reports(
    admin: &kube::Client,
    registry: &Registry,
    work: &std::path::Path,
    alice: &Api<SkillSet>,
    deployments: &Api<Deployment>,
) {
    let host = registry.host();
    apply(
        admin,
        "skillport.dev/v1alpha1",
        "ClusterSkillPolicy",
        None,
        policy(&host, "Audit"),
    )
    .await;
    let namespaced: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("skillport.dev", "v1alpha1", "SkillPolicy"),
            "skillpolicies",
        ),
    );
    namespaced
        .delete("team", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let audited = push_skill(registry, work, "pdf", "1", "pdf body, audited").await;
    let (_, message) = wait_verified(alice, "False", "PolicyAudit").await;
    assert!(
        message.contains(&format!(
            "{audited} is not signed as ClusterSkillPolicy \"corp\""
        )),
        "{message}"
    );
    wait_delivered(deployments, "pdf", &audited).await;
}

/// A bare Pod labelled for SkillSet `skill_set`, as its controller would make it.
fn labelled_pod(name: &str, skill_set: &str) -> k8s_openapi::api::core::v1::Pod {
    let manifest = deployment_manifest("agent");
    let template = &manifest["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(name);
    metadata["labels"]["skillport.dev/skillset"] = json!(skill_set);
    let mut spec = template["spec"].clone();
    spec["automountServiceAccountToken"] = json!(false);
    serde_json::from_value(json!({"metadata": metadata, "spec": spec})).unwrap()
}

/// The label door: a SkillSet resolved before a policy existed is ready, but once an enforcing
/// policy covers its skill, the webhook gives no Pod that skill, whatever the operator's status
/// says: here the registry is down, so the operator (woken by the policy at once, though the
/// update interval is an hour) cannot resolve again and keeps the SkillSet Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gives_no_pod_a_skill_an_enforcing_policy_has_not_seen_verified() {
    log_to_test_output();
    let mut stage = WebhookStage::start().await;
    let operator = Operator::run(&stage.cluster, stage.config()).await;
    let admin = stage.admin.clone();
    let host = stage.registry.host();
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let mut door = skill_set(
        "door",
        &host,
        &json!({"delivery": "ImageVolume", "failurePolicy": "Fail", "updateInterval": "1h"}),
    );
    door.spec.skills.truncate(1);
    skill_sets
        .create(&PostParams::default(), &door)
        .await
        .unwrap();
    wait_condition(&skill_sets, "door", "Ready", "True", "Resolved").await;
    let before = pods
        .create(&PostParams::default(), &labelled_pod("before", "door"))
        .await
        .expect("no policy yet: the Pod is admitted");
    let volumes = before.spec.unwrap().volumes.unwrap_or_default();
    assert!(volumes.iter().any(|v| v.name == "skill-pdf"), "{volumes:?}");

    let (release, _) = keys();
    stage.registry.stop();
    enforce_release_key(&admin, release, &host).await;
    // The policy wakes the operator at once: it tries to resolve again (and cannot).
    let woken = wait_condition(&skill_sets, "door", "Resolved", "False", "ResolveFailed").await;
    assert_eq!(
        condition(&woken, "Ready").unwrap().0,
        "True",
        "what was resolved before stays while the registry is down"
    );
    let refusal = wait_for(
        "the webhook refuses the Pod",
        Duration::from_secs(30),
        || async {
            match pods
                .create(&PostParams::default(), &labelled_pod("after", "door"))
                .await
            {
                Ok(_) => {
                    let _ = pods
                        .delete("after", &kube::api::DeleteParams::default())
                        .await;
                    Err("admitted".to_owned())
                }
                Err(kube::Error::Api(status)) => Ok(status.message),
                Err(other) => Err(other.to_string()),
            }
        },
    )
    .await;
    assert!(
        refusal.contains("skill \"pdf\" unverified")
            && refusal.contains("ClusterSkillPolicy \"corp\" requires"),
        "{refusal}"
    );
    operator.stop().await;
}

//! The operator as a deputy for every namespace (issue 22, "confused deputy"), on a real API
//! server with deploy/'s RBAC: the tenant `alice` is a ServiceAccount allowed to write SkillSets
//! and nothing else, and the operator runs as deploy/'s ServiceAccount.
//!
//! - Without the webhook, RBAC decides: the operator acts as the namespace's `skillport`
//!   ServiceAccount, so a SkillSet cannot get a workload patched or a Secret read that account may
//!   not — whatever the operator's own rights.
//! - With the webhook, a user asking for what they may not do themselves is refused at once,
//!   naming the verb, the resource and its name.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;
use skillport_testkit::{Cluster, ClusterOptions, Registry};

mod support;

use support::*;

/// A Role in NAMESPACE with `rules`, bound to ServiceAccount `account` of NAMESPACE (made).
async fn role_for(admin: &kube::Client, account: &str, role: &str, rules: &Value) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let made = serde_json::from_value(json!({"metadata": {"name": account}})).unwrap();
    match accounts.create(&PostParams::default(), &made).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("creating ServiceAccount {account}: {err}"),
    }
    let apply = PatchParams::apply("test").force();
    let body: Role =
        serde_json::from_value(json!({"metadata": {"name": role}, "rules": rules})).unwrap();
    Api::<Role>::namespaced(admin.clone(), NAMESPACE)
        .patch(role, &apply, &Patch::Apply(&body))
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{account}-{role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NAMESPACE)
        .patch(
            &format!("{account}-{role}"),
            &apply,
            &Patch::Apply(&binding),
        )
        .await
        .unwrap();
}

/// `kubectl auth can-i VERB RESOURCE --as=system:serviceaccount:NAMESPACE:ACCOUNT`, as TESTING.md
/// says to check a tenant's set-up before asserting on it.
fn can_i(cluster: &Cluster, account: &str, verb: &str, resource: &str) -> bool {
    let output = cluster
        .kubectl()
        .args(["auth", "can-i", verb, resource, "-n", NAMESPACE])
        .arg(format!("--as=system:serviceaccount:{NAMESPACE}:{account}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

/// Alice may write SkillSets in NAMESPACE, and nothing else.
async fn alice(cluster: &Cluster, admin: &kube::Client) -> Api<SkillSet> {
    role_for(
        admin,
        "alice",
        "skillset-author",
        &json!([{
            "apiGroups": ["skillport.dev"], "resources": ["skillsets"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }]),
    )
    .await;
    assert!(can_i(cluster, "alice", "create", "skillsets.skillport.dev"));
    assert!(!can_i(cluster, "alice", "patch", "deployments.apps/victim"));
    assert!(!can_i(
        cluster,
        "alice",
        "get",
        "secrets/regcred.example.com"
    ));
    Api::namespaced(
        cluster.service_account(NAMESPACE, "alice").await.client,
        NAMESPACE,
    )
}

/// Whether anything of the operator's is on the Deployment: a skill volume, or its field manager.
fn touched(deployment: &Deployment) -> bool {
    let managers = deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|entry| {
            entry
                .manager
                .as_deref()
                .is_some_and(|m| m.starts_with("skillport"))
        });
    let volumes = template(deployment)
        .spec
        .and_then(|spec| spec.volumes)
        .unwrap_or_default()
        .iter()
        .any(|volume| volume.name.starts_with("skill-"));
    managers || volumes
}

async fn touch(skill_sets: &Api<SkillSet>, name: &str, value: &str) {
    skill_sets
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/touch": value}}})),
        )
        .await
        .unwrap();
}

/// Step 1: the namespace grants the operator nothing: alice's SkillSet on another team's
/// Deployment, with a pull secret she may not read, gets neither.
async fn nothing_granted(alice: &Api<SkillSet>, deployments: &Api<Deployment>, host: &str) {
    let takeover = skill_set(
        "takeover",
        host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "victim"},
            "skills": [{"name": "pdf", "image": format!("{host}/skills/pdf:1"),
                        "mountPath": "/opt/tools"}],
        }),
    );
    alice
        .create(&PostParams::default(), &takeover)
        .await
        .expect("alice may create SkillSets");
    let refused = wait_condition(alice, "takeover", "Ready", "False", "Forbidden").await;
    let (_, _, message) = condition(&refused, "Ready").unwrap();
    assert!(
        message.contains("cannot get resource \"deployments\"")
            && message.contains(&format!("system:serviceaccount:{NAMESPACE}:skillport"))
            && message.contains("--clusterrole=skillport-tenant"),
        "step 1: the refusal names the account, what it may not do and what to grant: {message}"
    );
    let (resolved, _, why) = condition(&refused, "Resolved").unwrap();
    assert_eq!(
        resolved, "False",
        "step 1: resolved with a Secret nobody granted: {why}"
    );
    assert!(
        why.contains("cannot get resource \"secrets\""),
        "step 1: {why}"
    );
    assert!(
        refused.status.as_ref().unwrap().skills.is_empty(),
        "step 1: status.skills tells alice about an image only the pull secret opens: {:?}",
        refused.status
    );
    assert!(
        !touched(&deployments.get("victim").await.unwrap()),
        "step 1: the victim's Deployment was changed for alice"
    );
}

/// Step 4: the grant taken back, the SkillSet goes all the same (its finalizer does not hold it,
/// nor the namespace, forever), saying what it left behind.
async fn released_without_rights(admin: &kube::Client, alice: &Api<SkillSet>) {
    Api::<Role>::namespaced(admin.clone(), NAMESPACE)
        .delete("skillport-narrow", &DeleteParams::default())
        .await
        .unwrap();
    alice
        .delete("takeover", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(alice, "takeover").await;
    let events = events_for(admin, "takeover").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Forbidden")
                && e.action.as_deref() == Some("Cleanup")),
        "step 4: no Event says the skills stayed on the workload: {:?}",
        events
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_ref_and_secrets_the_namespace_does_not_grant_are_refused_by_rbac() {
    log_to_test_output();
    let cluster = Cluster::start_default().await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    install(&cluster).await;
    let admin = cluster.client();
    cluster.create_namespace(NAMESPACE).await;
    create_pull_secret(&admin, &registry, work.path()).await;
    // The namespace lets the operator act as its accounts, and grants them nothing yet.
    let_operator_act_in(&admin, NAMESPACE).await;
    // deploy/ lets the operator act as nobody by itself: only where a namespace opted in.
    let operator = "--as=system:serviceaccount:skillport-system:skillport-operator";
    for (namespace, expected) in [("kube-system", "no"), (NAMESPACE, "yes")] {
        let output = cluster
            .kubectl()
            .args([
                "auth",
                "can-i",
                "impersonate",
                "serviceaccounts/skillport",
                "-n",
                namespace,
            ])
            .arg(operator)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "may the operator impersonate in {namespace}?"
        );
    }
    push_skill(&registry, work.path(), "pdf", "1", "pdf body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment_manifest("victim"))
        .await
        .unwrap();
    gitops_apply(&deployments, &deployment_manifest("agent"))
        .await
        .unwrap();
    let alice = alice(&cluster, &admin).await;
    let operator = Operator::start(&cluster, &registry).await;

    nothing_granted(&alice, &deployments, &registry.host()).await;

    // 2. The namespace admin grants the `skillport` account a narrow Role: Deployment `agent`
    //    only, the pull secret. RBAC changes count at the next reconcile.
    role_for(
        &admin,
        "skillport",
        "skillport-narrow",
        &json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["agent"],
             "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["regcred.example.com"],
             "verbs": ["get"]},
        ]),
    )
    .await;
    touch(&alice, "takeover", "2").await;
    let resolved = wait_condition(&alice, "takeover", "Resolved", "True", "Resolved").await;
    let (ready, reason, message) = condition(&resolved, "Ready").unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "Forbidden"),
        "step 2: {message}"
    );
    assert!(
        message.contains("cannot get resource \"deployments\"") && message.contains("victim"),
        "step 2: {message}"
    );
    assert!(!touched(&deployments.get("victim").await.unwrap()));

    // 3. Pointed at the Deployment the namespace allows, it attaches.
    alice
        .patch(
            "takeover",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"workloadRef": {"kind": "Deployment", "name": "agent"}}}),
            ),
        )
        .await
        .unwrap();
    wait_condition(&alice, "takeover", "Ready", "True", "Applied").await;
    assert!(
        touched(&deployments.get("agent").await.unwrap()),
        "step 3: the Deployment the namespace allows has no skills"
    );
    assert!(!touched(&deployments.get("victim").await.unwrap()));

    released_without_rights(&admin, &alice).await;
    operator.stop().await;
}

/// Moving another team's SkillSet off their Deployment changes that Deployment too: alice,
/// owner of `mine` only, may not.
async fn moving_off_needs_the_right_to_patch(
    admin: &kube::Client,
    alice: &Api<SkillSet>,
    deployments: &Api<Deployment>,
    host: &str,
    me: &str,
) {
    gitops_apply(deployments, &deployment_manifest("mine"))
        .await
        .unwrap();
    role_for(
        admin,
        "alice",
        "mine-owner",
        &json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["mine"],
             "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["regcred.example.com"],
             "verbs": ["get"]},
        ]),
    )
    .await;
    Api::<SkillSet>::namespaced(admin.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &skill_set(
                "theirs",
                host,
                &json!({"workloadRef": {"kind": "Deployment", "name": "victim"}}),
            ),
        )
        .await
        .expect("the victim's owner (admin) attaches skills to it");
    let moved = alice
        .patch(
            "theirs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"workloadRef": {"kind": "Deployment", "name": "mine"}}})),
        )
        .await
        .expect_err("alice moved skills off a Deployment she may not patch");
    assert!(
        moved
            .to_string()
            .contains(&format!("{me} may not patch deployments.apps \"victim\"")),
        "{moved}"
    );

    Api::<SkillSet>::namespaced(admin.clone(), NAMESPACE)
        .delete("theirs", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(alice, "theirs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_a_skill_set_asking_for_what_its_author_may_not_do() {
    log_to_test_output();
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let webhook = WebhookFiles::new();
    install_with(&cluster, Some(&webhook.at())).await;
    let admin = tenant_namespace(&cluster, &registry, work.path()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment_manifest("victim"))
        .await
        .unwrap();
    let alice = alice(&cluster, &admin).await;
    let mut config = config(&registry);
    config.webhook = Some(webhook.serving.clone());
    let operator = Operator::run(&cluster, config).await;

    let takeover = skill_set(
        "takeover",
        &registry.host(),
        &json!({"workloadRef": {"kind": "Deployment", "name": "victim"}}),
    );
    let message = wait_for("the webhook answers", Duration::from_secs(30), || async {
        match alice.create(&PostParams::default(), &takeover).await {
            Ok(_) => panic!("alice's SkillSet on a Deployment she may not patch is admitted"),
            Err(kube::Error::Api(status)) if status.message.contains("denied the request") => {
                Ok(status.message)
            }
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    let me = format!("system:serviceaccount:{NAMESPACE}:alice");
    for expected in [
        format!("spec.workloadRef: {me} may not patch deployments.apps \"victim\""),
        format!("spec.workloadRef: {me} may not get deployments.apps \"victim\""),
        format!("spec.imagePullSecrets[0]: {me} may not get secrets \"regcred.example.com\""),
    ] {
        assert!(
            message.contains(&expected),
            "the denial does not say {expected:?}: {message}"
        );
    }

    moving_off_needs_the_right_to_patch(&admin, &alice, &deployments, &registry.host(), &me).await;

    // Given the rights herself, alice may ask the operator to use them.
    role_for(
        &admin,
        "alice",
        "victim-owner",
        &json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["victim"],
             "verbs": ["get", "patch"]},
        ]),
    )
    .await;
    alice
        .create(&PostParams::default(), &takeover)
        .await
        .expect("a SkillSet asking only for what its author may do is admitted");
    operator.stop().await;
}

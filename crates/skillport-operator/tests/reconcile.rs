//! The operator on a real control plane (kube-apiserver, etcd, kube-controller-manager), running
//! as the ServiceAccount `deploy/` installs with exactly its RBAC, against a real registry with
//! TLS and basic auth.
//!
//! One cluster per test (a control plane costs seconds and both cores to start): each test runs
//! its steps in order, each step named in its assertion messages.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;
use skillport_operator::controller::ImageVolumes;
use skillport_testkit::{Cluster, ClusterOptions, Registry};

mod support;

use support::*;

/// Everything the steps share.
struct World {
    cluster: Cluster,
    registry: Registry,
    work: tempfile::TempDir,
    host: String,
    admin: kube::Client,
    deployments: Api<Deployment>,
    skill_sets: Api<SkillSet>,
    /// The user's Deployment, as a GitOps tool applies it.
    manifest: Value,
    /// Its pod template as stored before any SkillSet.
    original: PodTemplateSpec,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_attaches_rolls_and_releases_on_a_real_control_plane() {
    log_to_test_output();
    let cluster = Cluster::start(ClusterOptions::default().with_controller_manager()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let manifest = deployment_manifest("agent");
    let original = template(&gitops_apply(&deployments, &manifest).await.unwrap());
    let mut w = World {
        host: registry.host(),
        skill_sets: Api::namespaced(admin.clone(), NAMESPACE),
        cluster,
        registry,
        work,
        admin,
        deployments,
        manifest,
        original,
    };
    let operator = Operator::start(&w.cluster, &w.registry).await;

    let (pdf_1, digest_1) = attach(&w).await;
    gitops(&w).await;
    no_op(&w).await;
    replaced(&w).await;
    let pdf_2 = moved_tag(&w, &pdf_1, &digest_1).await;
    switch_delivery(&w, &pdf_2).await;
    unauthorized(&w).await;
    missing_workload(&w).await;
    injection_plan(&w).await;
    delete(&w).await;
    registry_down(&mut w).await;
    operator.stop().await;
}

/// Attach, image volumes (the default on 1.35), by digest, to the agent container only.
/// Returns pdf's digest and the template's skills-digest.
async fn attach(w: &World) -> (String, String) {
    let World {
        registry,
        work,
        host,
        deployments,
        skill_sets,
        ..
    } = w;
    let pdf_1 = push_skill(registry, work.path(), "pdf", "1", "first").await;
    let review_1 = push_skill(registry, work.path(), "review", "1", "review").await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set(
                "tools",
                host,
                &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            ),
        )
        .await
        .unwrap();
    let tools = wait_condition(skill_sets, "tools", "Ready", "True", "Applied").await;
    let status = tools.status.clone().unwrap();
    assert_eq!(
        status.delivery,
        Some(skillport_operator::api::Delivery::ImageVolume),
        "attach: Auto picks ImageVolume on a 1.35 server"
    );
    let digests: Vec<_> = status
        .skills
        .iter()
        .map(|s| (s.name.clone(), s.digest.clone()))
        .collect();
    assert_eq!(
        digests,
        vec![
            ("pdf".into(), Some(pdf_1.clone())),
            ("review".into(), Some(review_1.clone()))
        ],
        "attach: status.skills pins the pushed digests"
    );
    assert_eq!(
        status.skills[0].version.as_deref(),
        Some("1.0.0"),
        "attach: the version comes from the manifest annotations"
    );
    let attached = deployments.get("agent").await.unwrap();
    assert_eq!(
        volume_reference(&attached, "skill-pdf"),
        Some(format!("{host}/skills/pdf@{pdf_1}")),
        "attach: the image volume is pinned by digest"
    );
    let pod = template(&attached).spec.unwrap();
    assert_eq!(
        pod.image_pull_secrets
            .unwrap_or_default()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>(),
        vec!["regcred.example.com"]
    );
    let agent = &pod.containers[0];
    let folders = agent
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SKILL_FOLDERS")
        .and_then(|e| e.value.clone());
    assert_eq!(folders.as_deref(), Some("/skills/pdf,/opt/review"));
    assert!(
        pod.containers[1].volume_mounts.is_none() && pod.containers[1].env.is_none(),
        "attach: the sidecar is untouched"
    );
    assert_eq!(
        pod.init_containers
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
        vec!["skillport-verify"]
    );
    let digest_1 =
        template(&attached).metadata.unwrap().annotations.unwrap()["skillport.dev/skills-digest"]
            .clone();
    (pdf_1, digest_1)
}

/// A GitOps tool applying the user's own manifest again: no conflict, nothing removed, no drift.
async fn gitops(w: &World) {
    let World {
        cluster,
        work,
        deployments,
        manifest,
        ..
    } = w;
    let before = deployments.get("agent").await.unwrap();
    let reapplied = gitops_apply(deployments, manifest)
        .await
        .expect("gitops: the second manager's apply does not conflict");
    assert!(
        volume_reference(&before, "skill-pdf").is_some(),
        "gitops: attached before"
    );
    assert_eq!(
        template(&reapplied),
        template(&before),
        "gitops: the skills stay, nothing changes"
    );
    let manifest_file = work.path().join("agent.json");
    std::fs::write(&manifest_file, manifest.to_string()).unwrap();
    let diff = cluster
        .kubectl()
        .args(["diff", "--server-side", "--field-manager=gitops", "-f"])
        .arg(&manifest_file)
        .output()
        .unwrap();
    assert_eq!(
        diff.status.code(),
        Some(0),
        "gitops: our fields are not its drift:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

/// A no-op resync writes nothing: touch the SkillSet (not its spec), wait, compare.
async fn no_op(w: &World) {
    let World {
        deployments,
        skill_sets,
        ..
    } = w;
    let version = deployments
        .get("agent")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let status_before = skill_sets.get("tools").await.unwrap().status;
    skill_sets
        .patch(
            "tools",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        deployments
            .get("agent")
            .await
            .unwrap()
            .metadata
            .resource_version,
        version,
        "no-op: the Deployment is not written"
    );
    assert_eq!(
        skill_sets.get("tools").await.unwrap().status,
        status_before,
        "no-op: the status is not rewritten"
    );
}

/// Another client replaces the Deployment with the template as the user wrote it (a full
/// update, as controllers that own their Deployments send): our fields are gone, the event is at
/// a version we did not write, and the operator puts them back. (Our own writes coming back
/// wake nobody; this must still wake the SkillSet.)
async fn replaced(w: &World) {
    let World {
        deployments,
        skill_sets,
        original,
        ..
    } = w;
    // No timer to fall back on: only the workload's watch event can bring the skills back.
    let interval = |value: &str| {
        let body = json!({"spec": {"updateInterval": value}});
        async move {
            let patched = skill_sets
                .patch("tools", &PatchParams::default(), &Patch::Merge(body))
                .await
                .unwrap();
            let generation = patched.metadata.generation;
            wait_for(
                "replaced: the new interval is reconciled",
                Duration::from_secs(30),
                || async {
                    let tools = skill_sets.get("tools").await.map_err(|e| e.to_string())?;
                    let seen = tools.status.and_then(|s| s.observed_generation);
                    (seen == generation)
                        .then_some(())
                        .ok_or(format!("{seen:?}"))
                },
            )
            .await;
        }
    };
    interval("1h").await;
    let mut stored = deployments.get("agent").await.unwrap();
    assert!(volume_reference(&stored, "skill-pdf").is_some());
    stored.spec.as_mut().unwrap().template = original.clone();
    stored.metadata.managed_fields = None;
    deployments
        .replace("agent", &PostParams::default(), &stored)
        .await
        .unwrap();
    assert!(
        volume_reference(&deployments.get("agent").await.unwrap(), "skill-pdf").is_none(),
        "replaced: the skills are off"
    );
    wait_for(
        "replaced: the operator puts the skills back",
        Duration::from_secs(15),
        || async {
            let d = deployments.get("agent").await.map_err(|e| e.to_string())?;
            volume_reference(&d, "skill-pdf")
                .map(drop)
                .ok_or_else(|| "no skill-pdf volume".to_owned())
        },
    )
    .await;
    interval("10s").await;
}

/// A moved tag: new digest, new skills-digest, a new ReplicaSet.
async fn moved_tag(w: &World, pdf_1: &str, digest_1: &str) -> String {
    let World {
        registry,
        work,
        host,
        admin,
        deployments,
        ..
    } = w;
    let pdf_2 = push_skill(registry, work.path(), "pdf", "1", "second").await;
    assert_ne!(pdf_1, pdf_2);
    let rolled = wait_for(
        "moved tag: the Deployment gets the new digest",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("agent").await.map_err(|e| e.to_string())?;
            let reference = volume_reference(&d, "skill-pdf");
            if reference == Some(format!("{host}/skills/pdf@{pdf_2}")) {
                Ok(d)
            } else {
                Err(format!("{reference:?}"))
            }
        },
    )
    .await;
    let digest_2 =
        template(&rolled).metadata.unwrap().annotations.unwrap()["skillport.dev/skills-digest"]
            .clone();
    assert_ne!(digest_1, digest_2, "moved tag: skills-digest changes");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), NAMESPACE);
    wait_for(
        "moved tag: a new ReplicaSet",
        Duration::from_secs(60),
        || async {
            let sets = replica_sets
                .list(&ListParams::default().labels("app=agent"))
                .await
                .map_err(|e| e.to_string())?;
            let with_new = sets.items.iter().any(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref())
                    .and_then(|a| a.get("skillport.dev/skills-digest"))
                    == Some(&digest_2)
            });
            if with_new && sets.items.len() >= 2 {
                Ok(())
            } else {
                Err(format!("{} ReplicaSets", sets.items.len()))
            }
        },
    )
    .await;
    pdf_2
}

/// Switch to the init container: image volumes go, the fetch container and its plan come.
async fn switch_delivery(w: &World, pdf_2: &str) {
    let World {
        admin,
        deployments,
        skill_sets,
        ..
    } = w;
    skill_sets
        .patch(
            "tools",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"delivery": "InitContainer"}})),
        )
        .await
        .unwrap();
    let switched = wait_for(
        "switch: the fetch init container replaces the image volumes",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("agent").await.map_err(|e| e.to_string())?;
            let pod = template(&d).spec.unwrap();
            let inits: Vec<String> = pod
                .init_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .collect();
            let image_volumes = pod.volumes.iter().flatten().any(|v| v.image.is_some());
            if inits == ["skillport-fetch"] && !image_volumes {
                Ok(d)
            } else {
                Err(format!("{inits:?}, image volumes: {image_volumes}"))
            }
        },
    )
    .await;
    assert!(
        template(&switched)
            .spec
            .unwrap()
            .image_pull_secrets
            .is_none(),
        "switch: the pull secret is mounted, not in imagePullSecrets"
    );
    let status = skill_sets.get("tools").await.unwrap().status.unwrap();
    let plan_name = status
        .plan_config_map
        .clone()
        .expect("status names the plan");
    assert_eq!(
        plan_reference(&switched).as_deref(),
        Some(plan_name.as_str()),
        "switch: the template mounts the plan status names"
    );
    let plan = Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE)
        .get(&plan_name)
        .await
        .expect("switch: the plan ConfigMap exists");
    let owner = &plan.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("SkillSet", "tools")
    );
    let plan_data = plan.data.unwrap();
    let plan_json: Value = serde_json::from_str(&plan_data["plan.json"]).unwrap();
    assert!(
        plan_json.to_string().contains(pdf_2),
        "switch: the plan pins the new digest: {plan_json}"
    );
    // The layer the resolve read from the image's manifests is in the plan, so that the init
    // container downloads it alone.
    let layer = status
        .skills
        .iter()
        .find(|skill| skill.name == "pdf")
        .and_then(|skill| skill.layer.clone())
        .expect("switch: status records the pdf skill's layer");
    let layers: Value = serde_json::from_str(&plan_data["layers.json"]).unwrap();
    assert_eq!(
        layers["layers"]["pdf"]["digest"].as_str(),
        Some(layer.digest.as_str()),
        "switch: the layers beside the plan name it: {layers}"
    );
    assert_ne!(
        Some(layer.digest.as_str()),
        status.skills[0].digest.as_deref()
    );
}

/// No credentials: 401 → Resolved False, an Event, no password anywhere.
async fn unauthorized(w: &World) {
    let World {
        registry,
        host,
        admin,
        skill_sets,
        ..
    } = w;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("locked", host, &json!({"imagePullSecrets": []})),
        )
        .await
        .unwrap();
    let locked = wait_condition(skill_sets, "locked", "Resolved", "False", "ResolveFailed").await;
    let (_, _, message) = condition(&locked, "Resolved").unwrap();
    assert!(
        message.contains("401") && message.contains("imagePullSecrets"),
        "401: the message says what and what to do: {message}"
    );
    let password = registry.credentials().unwrap().1.to_owned();
    let events = wait_for("401: an Event", Duration::from_secs(30), || async {
        let events = events_for(admin, "locked").await;
        if events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ResolveFailed"))
        {
            Ok(events)
        } else {
            Err(format!("{} events", events.len()))
        }
    })
    .await;
    let everything = format!("{locked:?}{events:?}");
    assert!(
        !everything.contains(&password),
        "no secret in status or Events"
    );
}

/// A workload that is not there yet, then is.
async fn missing_workload(w: &World) {
    let World {
        host,
        deployments,
        skill_sets,
        ..
    } = w;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set(
                "early",
                host,
                &json!({"workloadRef": {"kind": "Deployment", "name": "later"}}),
            ),
        )
        .await
        .unwrap();
    let early = wait_condition(skill_sets, "early", "Ready", "False", "WorkloadNotFound").await;
    assert!(condition(&early, "Ready").unwrap().2.contains("\"later\""));
    gitops_apply(deployments, &deployment_manifest("later"))
        .await
        .unwrap();
    wait_condition(skill_sets, "early", "Ready", "True", "Applied").await;
}

/// No workloadRef, InitContainer: the plan ConfigMap injected Pods will mount is made anyway.
async fn injection_plan(w: &World) {
    let World {
        host,
        admin,
        skill_sets,
        ..
    } = w;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("labelled", host, &json!({"delivery": "InitContainer"})),
        )
        .await
        .unwrap();
    let labelled = wait_condition(skill_sets, "labelled", "Ready", "True", "Resolved").await;
    let status = labelled.status.unwrap();
    assert_eq!(
        status.delivery,
        Some(skillport_operator::api::Delivery::InitContainer)
    );
    let plan_name = status.plan_config_map;
    let plan = Api::<ConfigMap>::namespaced(admin.clone(), NAMESPACE)
        .get(&plan_name.expect("status names the plan"))
        .await
        .expect("injection: the plan ConfigMap exists for injected Pods");
    assert!(plan.data.unwrap().contains_key("plan.json"));
}

/// Deleting the SkillSet gives the Deployment back as the user wrote it.
async fn delete(w: &World) {
    let World {
        deployments,
        skill_sets,
        original,
        ..
    } = w;
    skill_sets
        .delete("tools", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "delete: the SkillSet goes (finalizer done)",
        Duration::from_secs(60),
        || async {
            match skill_sets
                .get_opt("tools")
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(s) => Err(format!("finalizers {:?}", s.metadata.finalizers)),
            }
        },
    )
    .await;
    let released = template(&deployments.get("agent").await.unwrap());
    assert_eq!(
        serde_json::to_value(&released).unwrap(),
        serde_json::to_value(original).unwrap(),
        "delete: the template is the original again"
    );
}

/// The registry down: Resolved False (transient), retried with backoff, recovered.
async fn registry_down(w: &mut World) {
    let World {
        registry,
        host,
        skill_sets,
        ..
    } = w;
    registry.stop();
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("outage", host, &json!({})),
        )
        .await
        .unwrap();
    let outage = wait_condition(skill_sets, "outage", "Resolved", "False", "ResolveFailed").await;
    assert!(
        condition(&outage, "Resolved")
            .unwrap()
            .2
            .contains("cannot connect"),
        "outage: {:?}",
        condition(&outage, "Resolved")
    );
    registry.restart();
    wait_condition(skill_sets, "outage", "Resolved", "True", "Resolved").await;
}

/// A server with the `ImageVolume` gate off (it drops image volumes and still answers 200):
/// `Auto` detects it and takes the init container; a forced `ImageVolume` is reported as
/// unsupported; and an operator wrongly told image volumes work reads back what the server stored
/// and reports the dropped volumes instead of claiming success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_volumes_off_auto_takes_the_init_container_and_forced_is_reported() {
    log_to_test_output();
    let cluster =
        Cluster::start(ClusterOptions::default().feature_gate("ImageVolume", false)).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    push_skill(&registry, work.path(), "pdf", "1", "first").await;
    push_skill(&registry, work.path(), "review", "1", "review").await;
    let admin = prepare(&cluster, &registry, work.path()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let mut originals = std::collections::BTreeMap::new();
    for name in ["auto", "forced", "misled"] {
        let stored = gitops_apply(&deployments, &deployment_manifest(name))
            .await
            .unwrap();
        originals.insert(name, template(&stored));
    }
    let attach_to = |name: &str| json!({"workloadRef": {"kind": "Deployment", "name": name}});

    let operator = Operator::start(&cluster, &registry).await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("auto", &host, &attach_to("auto")),
        )
        .await
        .unwrap();
    let auto = wait_condition(&skill_sets, "auto", "Ready", "True", "Applied").await;
    assert_eq!(
        auto.status.unwrap().delivery,
        Some(skillport_operator::api::Delivery::InitContainer),
        "auto: the dry-run showed the volume dropped"
    );
    let inits: Vec<String> = template(&deployments.get("auto").await.unwrap())
        .spec
        .unwrap()
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(inits, ["skillport-fetch"]);

    let mut forced = attach_to("forced");
    forced["delivery"] = json!("ImageVolume");
    skill_sets
        .create(&PostParams::default(), &skill_set("forced", &host, &forced))
        .await
        .unwrap();
    let forced = wait_condition(
        &skill_sets,
        "forced",
        "Ready",
        "False",
        "ImageVolumesUnsupported",
    )
    .await;
    assert!(
        condition(&forced, "Ready")
            .unwrap()
            .2
            .contains("feature gate")
    );
    assert_eq!(
        template(&deployments.get("forced").await.unwrap()),
        originals["forced"],
        "forced: nothing attached"
    );
    operator.stop().await;

    misled(&cluster, &registry, &skill_sets, &deployments).await;
}

/// An operator wrongly told image volumes work: it reads back what the server stored, takes the
/// rest off, and falls back to the init container for that SkillSet, with an Event saying why.
async fn misled(
    cluster: &Cluster,
    registry: &Registry,
    skill_sets: &Api<SkillSet>,
    deployments: &Api<Deployment>,
) {
    let host = registry.host();
    let operator = Operator::start_with(cluster, registry, ImageVolumes::Enabled).await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set(
                "misled",
                &host,
                &json!({"workloadRef": {"kind": "Deployment", "name": "misled"}}),
            ),
        )
        .await
        .unwrap();
    let misled = wait_condition(skill_sets, "misled", "Ready", "True", "Applied").await;
    assert_eq!(
        misled.status.unwrap().delivery,
        Some(skillport_operator::api::Delivery::InitContainer),
        "misled: Auto falls back to the init container for this SkillSet"
    );
    let events = events_for(&cluster.client(), "misled").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ImageVolumesUnsupported")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("dropped") && n.contains("falling back"))),
        "misled: an Event says why: {events:?}"
    );
    let pod = template(&deployments.get("misled").await.unwrap())
        .spec
        .unwrap();
    assert!(
        !pod.volumes.iter().flatten().any(|v| v.image.is_some()),
        "misled: no image volume left"
    );
    assert_eq!(
        pod.init_containers
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["skillport-fetch"]
    );
    operator.stop().await;
}

/// Two replicas with leader election: one leads (holds the Lease and reconciles), the other
/// stands by; when the leader shuts down it releases the Lease and the other takes over and
/// reconciles what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_hand_over_on_shutdown() {
    log_to_test_output();
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    push_skill(&registry, work.path(), "pdf", "1", "first").await;
    push_skill(&registry, work.path(), "review", "1", "review").await;
    let admin = prepare(&cluster, &registry, work.path()).await;
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), "skillport-system");
    let replica = |identity: &str| {
        let mut config = config(&registry);
        config.identity = Some(identity.to_owned());
        config.leader_election = Some(skillport_operator::runtime::leader::Timings {
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_millis(500),
        });
        config
    };
    let holder = || async {
        leases
            .get_opt("skillport-operator")
            .await
            .unwrap()
            .and_then(|lease| lease.spec)
            .and_then(|spec| spec.holder_identity)
    };

    let a = Operator::run(&cluster, replica("a")).await;
    wait_for("a leads", Duration::from_secs(30), || async {
        match holder().await.as_deref() {
            Some("a") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let b = Operator::run(&cluster, replica("b")).await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("first", &host, &json!({})),
        )
        .await
        .unwrap();
    wait_condition(&skill_sets, "first", "Ready", "True", "Resolved").await;
    // Longer than a lease: b stands by while a renews.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(holder().await.as_deref(), Some("a"), "a keeps the Lease");

    a.stop().await;
    wait_for("b takes over", Duration::from_secs(30), || async {
        match holder().await.as_deref() {
            Some("b") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("second", &host, &json!({})),
        )
        .await
        .unwrap();
    wait_condition(&skill_sets, "second", "Ready", "True", "Resolved").await;
    let transitions = leases
        .get("skillport-operator")
        .await
        .unwrap()
        .spec
        .and_then(|spec| spec.lease_transitions);
    assert_eq!(transitions, Some(1), "one hand-over");
    b.stop().await;
}

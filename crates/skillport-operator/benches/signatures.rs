//! Skill policies' cost: 20 skills signed as cosign signs (v3 bundles, TLS + basic-auth
//! distribution registry on loopback), resolved by the operator's resolver
//!
//! - without a policy (the floor: one manifest read per skill),
//! - with an enforcing ClusterSkillPolicy, cold (first sight of each digest: its signatures are
//!   read and checked),
//! - and warm (a resync: the verdicts are cached, nothing more is read),
//!
//! and the peer: `cosign verify --key` of the same 20 images, one after another (as a script
//! or an init container would), with the same registry, CA and credentials. Prints each time,
//! the cost of verifying over the floor, and the ratio to cosign. Target: warm equals the
//! floor; cold adds one signature lookup per digest.
//!
//! `SKILLPORT_K8S_BIN=$(scripts/k8s-tools.sh --bin-dir) cargo bench -p skillport-operator --bench signatures`

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use skillport_operator::api::SkillSetSpec;
use skillport_operator::controller::resolve::{PullSecret, Resolver};
use skillport_operator::policy::{ClusterSkillPolicySpec, LoadedPolicy, Policies};
use skillport_sign::{PrivateKey, Requirement};
use skillport_testkit::{Registry, k8s_tool};
use support::{push_skill, sign_skill};

const SKILLS: usize = 20;
const ROUNDS: usize = 5;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let spec: SkillSetSpec = runtime.block_on(async {
        let mut skills = Vec::new();
        for n in 0..SKILLS {
            let name = format!("skill-{n:02}");
            push_skill(&registry, work.path(), &name, "1", &format!("body {n}")).await;
            sign_skill(&registry, work.path(), &name, "1", &key).await;
            skills.push(serde_json::json!({"name": name,
                "image": format!("{}/skills/{name}:1", registry.host())}));
        }
        serde_json::from_value(serde_json::json!({"skills": skills})).unwrap()
    });
    let secret = PullSecret {
        name: "regcred".into(),
        config: std::fs::read(registry.docker_config(&work.path().join("secret"))).unwrap(),
    };
    let ca = registry.ca_file().unwrap().to_path_buf();
    let policy = LoadedPolicy::new(
        "ClusterSkillPolicy \"bench\"".into(),
        &serde_json::from_value::<ClusterSkillPolicySpec>(serde_json::json!({})).unwrap(),
        vec![(
            "release".into(),
            Requirement::Key {
                key: key.public_key(),
                name: "release".into(),
            },
        )],
        None,
    );
    let policies = Policies {
        list: vec![policy],
        fingerprint: "bench".into(),
    };
    let none = Policies::default();
    let resolve = |resolver: &Resolver, policies: &Policies| {
        let started = Instant::now();
        let skills = runtime
            .block_on(resolver.resolve(&spec, std::slice::from_ref(&secret), None, policies, &[]))
            .expect("every skill resolves");
        if !policies.list.is_empty() {
            assert!(
                skills.iter().all(|s| !s.signers.is_empty()),
                "every skill verified"
            );
        }
        started.elapsed()
    };
    let mut times = [vec![], vec![], vec![], vec![], vec![]];
    for _ in 0..ROUNDS {
        // Fresh resolvers: first sight, new connections and tokens. Then the same resolvers
        // again: a resync.
        let plain = Resolver::new(vec![ca.clone()]);
        let verifying = Resolver::new(vec![ca.clone()]);
        times[0].push(resolve(&plain, &none));
        times[1].push(resolve(&verifying, &policies));
        times[2].push(resolve(&plain, &none));
        times[3].push(resolve(&verifying, &policies));
        times[4].push(cosign_verify_all(&registry, work.path(), &key, &spec));
    }
    let [floor_cold, cold, floor_warm, warm, cosign] = times.map(median);
    let added = cold.saturating_sub(floor_cold);
    println!(
        "{SKILLS} skills signed with a key (cosign v3 bundles), TLS + basic-auth registry on loopback, median of {ROUNDS}:"
    );
    println!(
        "  first sight: resolve, no policy    {:>8.1} ms",
        ms(floor_cold)
    );
    println!(
        "  first sight: resolve + verify      {:>8.1} ms  (+{:.1} ms, {:.1} ms per digest)",
        ms(cold),
        ms(added),
        ms(added) / f64::from(u32::try_from(SKILLS).expect("a few skills"))
    );
    println!(
        "  resync: resolve, no policy         {:>8.1} ms",
        ms(floor_warm)
    );
    println!(
        "  resync: resolve + verify (cached)  {:>8.1} ms  ({:.2}x the resync without a policy)",
        ms(warm),
        ratio(warm, floor_warm)
    );
    println!(
        "  cosign verify --key, one by one    {:>8.1} ms  (skillport's first sight is {:.1}x faster)",
        ms(cosign),
        ratio(cosign, cold)
    );
}

/// `cosign verify --key` of every skill, one after another; panics if one fails.
fn cosign_verify_all(
    registry: &Registry,
    work: &Path,
    key: &PrivateKey,
    spec: &SkillSetSpec,
) -> Duration {
    let public = work.join("release.pub");
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    let docker = work.join("cosign-docker");
    registry.docker_config(&docker);
    let started = Instant::now();
    for skill in &spec.skills {
        let output = Command::new(k8s_tool("cosign"))
            .env("DOCKER_CONFIG", &docker)
            .env("SSL_CERT_FILE", registry.ca_file().unwrap())
            .args(["verify", "--key"])
            .arg(&public)
            .args([
                "--insecure-ignore-tlog=true",
                skill.image.as_deref().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cosign verify: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

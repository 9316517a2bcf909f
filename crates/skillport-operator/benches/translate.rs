//! `translate` for a 20-skill SkillSet: pod templates per second on one core, each mode
//! (issue 12's target: at least 20,000). `cargo bench -p skillport-operator --bench translate`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::json;
use skillport_operator::api::{ResolvedSkill, SkillSetSpec};
use skillport_operator::translate::{Mode, Options, SkillResources};

fn main() {
    let skills: Vec<_> = (0..20)
        .map(|i| json!({"name": format!("skill-{i:02}"), "image": format!("registry.example.com/skills/s{i}:1.0")}))
        .collect();
    let spec: SkillSetSpec = serde_json::from_value(json!({
        "skills": skills,
        "imagePullSecrets": [{"name": "artifactory"}, {"name": "ecr"}],
    }))
    .expect("a spec");
    let resolved: Vec<ResolvedSkill> = (0..20)
        .map(|i| ResolvedSkill {
            name: format!("skill-{i:02}"),
            digest: Some(format!("sha256:{i:064x}")),
            ..ResolvedSkill::default()
        })
        .collect();
    let template: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": {"labels": {"app": "agent"}},
        "spec": {
            "containers": [
                {"name": "agent", "image": "registry.example.com/agent:1", "env": [{"name": "A", "value": "b"}]},
                {"name": "proxy", "image": "registry.example.com/proxy:1"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }))
    .expect("a template");
    let options = Options::new("registry.example.com/skillport:0.1.0");
    for mode in [Mode::ImageVolume, Mode::InitContainer] {
        let run = || {
            let resources =
                SkillResources::new("agent", &spec, &resolved, &template, mode, &options)
                    .expect("translates");
            black_box(resources.attach_to(template.clone()));
        };
        for _ in 0..1_000 {
            run();
        }
        let started = Instant::now();
        let mut count = 0u32;
        while started.elapsed() < Duration::from_secs(2) {
            for _ in 0..100 {
                run();
            }
            count += 100;
        }
        let per_second = f64::from(count) / started.elapsed().as_secs_f64();
        println!(
            "translate + apply, 20 skills, {}: {per_second:.0} pod templates/s ({:.1} µs each)",
            mode.as_str(),
            1e6 / per_second
        );
    }
}

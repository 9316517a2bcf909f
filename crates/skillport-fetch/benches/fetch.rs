//! Fetch benchmark: 20 skills (19 small, one 100 MB) from a TLS + basic-auth registry into an
//! empty folder, the way the init container does it, against what the old init script did.
//!
//! In one run, on the same images, per round:
//! - `skillport fetch` (the release binary, a child process) with a plan, a mounted pull
//!   secret and the CA, into a fresh folder; wall time and peak RSS (`/usr/bin/time -f %M`);
//! - the same again into the filled folder (every skill up to date);
//! - the old init script's loop: `skopeo copy docker://… dir:…` + `tar -xzf` per skill, one
//!   after the other.
//!
//! Run: `cargo build --release -p skillport && cargo bench -p skillport-fetch --bench fetch`
//! (needs docker-registry, skopeo, GNU tar and GNU time). `SKILLPORT_BIN` picks another
//! binary (e.g. the musl build); `SKILLPORT_BENCH_ROUNDS` sets the rounds (default 3).

// A benchmark report: rounded display values, and one long main that reads top to bottom.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skillport_oci::{BuildRequest, Reference, Store};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress};
use skillport_testkit::{Registry, bench};

const SKILLS: usize = 20;
const BIG: usize = 19;
const BIG_BYTES: usize = 100 << 20;

fn main() {
    // cargo bench passes --bench; `cargo test --benches` does not, and should not start this.
    if !bench::started_by_cargo_bench() {
        println!("fetch benchmark: run with `cargo bench -p skillport-fetch --bench fetch`");
        return;
    }
    let binary = bench::skillport_binary();
    assert!(
        Path::new("/usr/bin/time").is_file(),
        "/usr/bin/time (Debian package `time`) measures the peak RSS"
    );
    let rounds = bench::rounds(3);
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::tls_basic_auth();
    let secret = registry.docker_config(&work.path().join("secret"));
    let ca = registry.ca_file().unwrap().to_path_buf();

    eprintln!(
        "preparing {SKILLS} skills (one of {} MiB) …",
        BIG_BYTES >> 20
    );
    let store = Store::open(&work.path().join("store")).unwrap();
    let names = build_skills(&store, work.path());
    let client = Client::new(
        Credentials::from_files(vec![AuthFile::read(&secret).unwrap()]),
        ClientOptions {
            ca_files: vec![ca.clone()],
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut skills = Vec::new();
    for name in &names {
        let local: Reference = format!("{name}:1").parse().unwrap();
        let remote = format!("{}/skills/{name}:1", registry.host());
        let digest = runtime
            .block_on(client.push(
                &store,
                &local,
                &remote.parse().unwrap(),
                Arc::new(NoProgress),
            ))
            .unwrap();
        // Pinned, as the operator writes plans.
        skills.push(serde_json::json!({"name": name, "image": format!("{remote}@{digest}")}));
    }
    let plan = work.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec_pretty(&serde_json::json!({
            "apiVersion": "skillport.dev/v1alpha1",
            "kind": "FetchPlan",
            "skills": skills,
            "pullSecrets": [{"name": "bench", "path": secret}],
            "caFiles": [ca],
        }))
        .unwrap(),
    )
    .unwrap();

    let mut ours = Vec::new();
    let mut again = Vec::new();
    let mut rss = Vec::new();
    let mut skopeo = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let out = tempfile::tempdir_in(work.path()).unwrap();
        let into = out.path().join("skills");
        let (time, hwm) = fetch(&binary, &plan, &into);
        ours.push(time);
        rss.push(hwm);
        assert!(into.join(&names[BIG]).join("SKILL.md").is_file());
        let (time, hwm) = fetch(&binary, &plan, &into);
        again.push(time);
        rss.push(hwm);
        skopeo.push(skopeo_loop(
            &registry,
            &secret,
            &names,
            &out.path().join("skopeo"),
        ));
    }

    let (ours, again, skopeo) = (
        bench::median(&ours),
        bench::median(&again),
        bench::median(&skopeo),
    );
    let hwm = rss.iter().max().copied().unwrap_or(0);
    let size = std::fs::metadata(&binary).unwrap().len();
    println!();
    println!(
        "fetch {SKILLS} skills (19 small, one {} MiB) from TLS + basic auth, median of {rounds}",
        BIG_BYTES >> 20
    );
    println!(
        "  skillport fetch, empty folder        {:>8.3} s",
        ours.as_secs_f64()
    );
    println!(
        "  skillport fetch, again (up to date)  {:>8.3} s",
        again.as_secs_f64()
    );
    println!(
        "  skopeo copy + tar loop               {:>8.3} s",
        skopeo.as_secs_f64()
    );
    println!();
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    let ratio = skopeo.as_secs_f64() / ours.as_secs_f64();
    println!(
        "skopeo loop / skillport fetch: {ratio:.2}x  (target >= 3x: {})",
        verdict(ratio >= 3.0)
    );
    println!(
        "peak RSS:                      {:.1} MiB  (target <= 30 MiB: {})",
        hwm as f64 / 1024.0,
        verdict(hwm <= 30 * 1024)
    );
    println!(
        "binary size:                   {:.1} MB ({})  (target <= 15 MB: {})",
        size as f64 / 1e6,
        binary.display(),
        verdict(size <= 15_000_000)
    );
}

/// Runs `skillport fetch` under GNU time; returns the wall time and the peak RSS in KiB.
fn fetch(binary: &Path, plan: &Path, into: &Path) -> (Duration, u64) {
    let rss = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss.path())
        .arg(binary)
        .args(["fetch", "--plan"])
        .arg(plan)
        .arg("--into")
        .arg(into)
        .arg("--termination-log")
        .arg(into.with_extension("log"))
        .env_clear()
        .current_dir("/")
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        output.status.success(),
        "skillport fetch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hwm = std::fs::read_to_string(rss.path())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (elapsed, hwm)
}

fn build_skills(store: &Store, dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..SKILLS {
        let name = format!("bench-skill-{i:02}");
        let root = dir.join("src").join(&name);
        std::fs::create_dir_all(root.join("references")).unwrap();
        std::fs::write(
            root.join("SKILL.md"),
            format!("---\nname: {name}\ndescription: Benchmark skill number {i}.\n---\n\n# {name}\n\nInstructions.\n"),
        )
        .unwrap();
        for f in 0..5 {
            let text = format!("reference {f} of skill {i}\n").repeat(200);
            std::fs::write(root.join(format!("references/ref-{f}.md")), text).unwrap();
        }
        if i == BIG {
            // Random bytes, so the compressed blob is as big as the data.
            let mut file = std::fs::File::create(root.join("references/model.bin")).unwrap();
            let mut chunk = vec![0u8; 1 << 20];
            for _ in 0..(BIG_BYTES >> 20) {
                for byte in &mut chunk {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *byte = (seed >> 24) as u8;
                }
                file.write_all(&chunk).unwrap();
            }
        }
        let skill = skillport_skill::load(&root, skillport_skill::Mode::Strict).unwrap();
        let entries = skillport_skill::walk(&root).unwrap();
        let names_ = [format!("{name}:1").parse::<Reference>().unwrap()];
        skillport_oci::build(
            store,
            &BuildRequest {
                skill: &skill,
                entries: &entries,
                generated_card: None,
                source_date_epoch: None,
                names: &names_,
            },
            &mut |_| {},
        )
        .unwrap();
        names.push(name);
    }
    names
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the old init script did: per skill, `skopeo copy` to a `dir:` layout, then untar the
/// layer, one skill after the other.
fn skopeo_loop(registry: &Registry, authfile: &Path, names: &[String], out: &Path) -> Duration {
    let start = Instant::now();
    for name in names {
        let dir = out.join("copies").join(name);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        run(skillport_testkit::skopeo()
            .arg("copy")
            .arg("--quiet")
            .arg("--src-authfile")
            .arg(authfile)
            .arg("--src-cert-dir")
            .arg(registry.cert_dir().unwrap())
            .arg(format!("docker://{}/skills/{name}:1", registry.host()))
            .arg(format!("dir:{}", dir.display())));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let hex = layer.trim_start_matches("sha256:");
        let dest = out.join("skills").join(name);
        std::fs::create_dir_all(&dest).unwrap();
        run(Command::new("tar")
            .args(["--force-local", "-xzf"])
            .arg(dir.join(hex))
            .arg("-C")
            .arg(&dest));
    }
    start.elapsed()
}

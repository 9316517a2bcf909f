//! Delivery benchmark (issue "skill delivery at the limit"): `skillport fetch` against what agent
//! platforms run in init containers and against the download floor, in one run, rotating the
//! order every round (this machine drifts ~20 % between runs a minute apart, and page-cache
//! writeback from one tool slows the next).
//!
//! The corpus (`SKILLPORT_BENCH_CORPUS`): `mixed` (default) is 19 small skills (50 files,
//! ~200 KB each) and one 100 MB skill; `small:N` is N small skills; `big` the 100 MB skill alone. Each is built and pushed by
//! the release `skillport` into a TLS + basic-auth registry on loopback. Per round:
//! - `skillport fetch` (glibc: `SKILLPORT_BIN`, default target/release/skillport) into a fresh
//!   folder, pinned plan with each skill's layer, pull secret and CA as the operator writes
//!   them;
//! - the same with the static musl build when `SKILLPORT_MUSL_BIN` names it;
//! - the same with a plan that names no layer (an operator from before they were named):
//!   fetch reads each image's index and manifest first;
//! - `crane export IMAGE - | tar -x`, one skill after another, and 8 at a time;
//! - kagent's `skills-init` program when `SKILLPORT_KAGENT_SKILLS_INIT` names it (it is not a
//!   Go module the proxy serves), else "not measured". It is run as `PROGRAM OUT_DIR IMAGE…`
//!   with `DOCKER_CONFIG` and `SSL_CERT_FILE` set: wrap kagent's binary in a script that maps
//!   these onto its own flags;
//! - the floor: every layer blob with `curl -o /dev/null`, all in parallel in one curl.
//!
//! Run: `cargo build --release -p skillport && cargo bench -p skillport-fetch --bench delivery`.
//! `SKILLPORT_BENCH_ROUNDS` sets the rounds (default 5); `SKILLPORT_BENCH_PERF=FILE` records
//! one more `skillport fetch` with `perf record -g` into FILE; `SKILLPORT_BENCH_OUT=DIR` writes
//! the skills under DIR (e.g. /dev/shm) instead of the work folder; `SKILLPORT_BENCH_AUTH=none`
//! serves TLS without basic auth.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skillport_fetch::plan::{CredentialFile, FetchPlan, LAYERS_FILE, PlannedLayer, PlannedSkill};
use skillport_testkit::{Registry, bench};

const SMALL_FILES: usize = 50;
const SMALL_FILE_BYTES: usize = 4 << 10;
const BIG_BYTES: usize = 100 << 20;

/// One way of delivering the corpus into a folder; returns the wall time.
type Tool<'a> = Box<dyn Fn(&Path) -> Duration + 'a>;

/// One skill of the corpus as pushed.
struct Pushed {
    name: String,
    /// `host/skills/name:1@sha256:…`
    pinned: String,
    /// The layer's digest, for the floor.
    layer: String,
    /// The layer as the operator names it in the plan.
    planned: PlannedLayer,
}

fn main() {
    if !bench::started_by_cargo_bench() {
        println!("delivery benchmark: run with `cargo bench -p skillport-fetch --bench delivery`");
        return;
    }
    let binary = bench::skillport_binary();
    let musl = std::env::var_os("SKILLPORT_MUSL_BIN").map(PathBuf::from);
    let kagent = std::env::var_os("SKILLPORT_KAGENT_SKILLS_INIT").map(PathBuf::from);
    let crane = skillport_testkit::k8s_tool("crane");
    let rounds = bench::rounds(5);
    let corpus = std::env::var("SKILLPORT_BENCH_CORPUS").unwrap_or_else(|_| "mixed".to_owned());
    let (small, big) = match (corpus.as_str(), corpus.strip_prefix("small:")) {
        (_, Some(count)) => (count.parse().expect("small:N"), false),
        ("big", None) => (0, true),
        _ => (19, true),
    };

    let work = tempfile::tempdir().unwrap();
    let registry = bench::registry();
    let auth = registry.docker_config(&work.path().join("auth"));
    let ca = registry.ca_file().unwrap().to_path_buf();
    let credentials = registry.credentials();
    eprintln!("building and pushing the corpus ({corpus}) …");
    let corpus_skills = push_corpus(&binary, work.path(), &registry, &auth, small, big);
    let plan = write_plan(work.path(), &corpus_skills, &auth, &ca, true);
    let plan_without_layers = write_plan(work.path(), &corpus_skills, &auth, &ca, false);
    let curl_config = work.path().join("curl.conf");
    write_curl_config(&curl_config, &registry, credentials, &ca, &corpus_skills);
    let docker_config_dir = auth.parent().unwrap().to_path_buf();

    let mut tools: Vec<(&str, Tool)> = vec![
        (
            "skillport fetch",
            Box::new(|out: &Path| fetch(&binary, &plan, out)),
        ),
        (
            "skillport fetch, plan without layers",
            Box::new(|out: &Path| fetch(&binary, &plan_without_layers, out)),
        ),
        (
            "crane export | tar, one at a time",
            Box::new(|out: &Path| {
                crane_loop(&crane, &docker_config_dir, &ca, &corpus_skills, out, 1)
            }),
        ),
        (
            "crane export | tar, 8 at a time",
            Box::new(|out: &Path| {
                crane_loop(&crane, &docker_config_dir, &ca, &corpus_skills, out, 8)
            }),
        ),
        (
            "floor: curl every layer, all in parallel",
            Box::new(|_: &Path| timed(Command::new("curl").arg("-K").arg(&curl_config))),
        ),
    ];
    if let Some(musl) = &musl {
        tools.insert(
            1,
            (
                "skillport fetch (static musl)",
                Box::new(|out: &Path| fetch(musl, &plan, out)),
            ),
        );
    }
    if let Some(kagent) = &kagent {
        tools.push((
            "kagent skills-init",
            Box::new(|out: &Path| kagent_run(kagent, &docker_config_dir, &ca, &corpus_skills, out)),
        ));
    }

    // Where the skills are written: the work folder, or `SKILLPORT_BENCH_OUT` (a tmpfs such as
    // /dev/shm takes the file system's inode allocation out of the figures; see
    // docs/performance.md).
    let out_parent = std::env::var_os("SKILLPORT_BENCH_OUT")
        .map_or_else(|| work.path().to_path_buf(), PathBuf::from);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for slot in 0..tools.len() {
            let which = (slot + round) % tools.len();
            let out = tempfile::tempdir_in(&out_parent).unwrap();
            times[which].push((tools[which].1)(&out.path().join("skills")));
        }
    }
    // Where the time goes: one more `skillport fetch` under `perf record`, when asked.
    if let Some(data) = std::env::var_os("SKILLPORT_BENCH_PERF") {
        let out = tempfile::tempdir_in(&out_parent).unwrap();
        let into = out.path().join("skills");
        timed(
            Command::new("perf")
                .args(["record", "-F", "4999", "-g", "-o"])
                .arg(&data)
                .arg("--")
                .arg(&binary)
                .args(["fetch", "--plan"])
                .arg(&plan)
                .arg("--into")
                .arg(&into)
                .arg("--termination-log")
                .arg(into.with_extension("log")),
        );
        eprintln!(
            "perf data: {} (perf report -i …)",
            Path::new(&data).display()
        );
    }
    let medians: Vec<Duration> = times.iter().map(|t| bench::median(t)).collect();
    let ours = medians[0];
    let floor_slot = tools
        .iter()
        .position(|(name, _)| name.starts_with("floor"))
        .expect("the floor is measured");
    let floor = medians[floor_slot];
    let mut report = String::new();
    let _ = writeln!(
        report,
        "\ndelivery of {} skills ({corpus}) from TLS{} on loopback, median of {rounds}, order rotated",
        corpus_skills.len(),
        if credentials.is_some() {
            " + basic auth"
        } else {
            ", no auth"
        }
    );
    for ((name, _), median) in tools.iter().zip(&medians) {
        let _ = writeln!(
            report,
            "  {name:<42} {:>9.1} ms  {:>5.2}x skillport  {:>5.2}x floor",
            ms(*median),
            median.as_secs_f64() / ours.as_secs_f64(),
            median.as_secs_f64() / floor.as_secs_f64()
        );
    }
    if kagent.is_none() {
        let _ = writeln!(
            report,
            "  kagent skills-init                         not measured (set SKILLPORT_KAGENT_SKILLS_INIT)"
        );
    }
    let per_skill = ours.as_secs_f64() * 1000.0 / corpus_skills.len() as f64;
    let _ = writeln!(
        report,
        "\nskillport fetch / floor: {:.2}x ({per_skill:.1} ms per skill)",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    if musl.is_some() {
        let _ = writeln!(
            report,
            "static musl / glibc:     {:.2}x (target <= 1.10)",
            medians[1].as_secs_f64() / ours.as_secs_f64()
        );
    }
    print!("{report}");
}

/// Builds and pushes the corpus with the release binary; returns each skill pinned.
fn push_corpus(
    binary: &Path,
    work: &Path,
    registry: &Registry,
    auth: &Path,
    small: usize,
    big: bool,
) -> Vec<Pushed> {
    let store = work.join("store");
    let mut pushed = Vec::new();
    for index in 0..small + usize::from(big) {
        let name = format!("bench-skill-{index:03}");
        let dir = work.join("src").join(&name);
        write_skill(&dir, &name, index, big && index == small);
        let local = format!("{name}:1");
        let remote = format!("{}/skills/{name}:1", registry.host());
        let skillport = |args: &[&str]| {
            let output = Command::new(binary)
                .env_clear()
                .env("SKILLPORT_STORE", &store)
                .args(args)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "skillport {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        skillport(&["build", "-t", &local, dir.to_str().unwrap()]);
        let ca = registry.ca_file().unwrap().to_str().unwrap().to_owned();
        let pushed_json: serde_json::Value = serde_json::from_str(&skillport(&[
            "push",
            "--ca-file",
            &ca,
            "--authfile",
            auth.to_str().unwrap(),
            &local,
            &remote,
            "--json",
        ]))
        .unwrap();
        let inspected: serde_json::Value =
            serde_json::from_str(&skillport(&["inspect", &local, "--json"])).unwrap();
        let layer = &inspected["layer"];
        pushed.push(Pushed {
            name,
            pinned: format!("{remote}@{}", pushed_json["digest"].as_str().unwrap()),
            layer: layer["digest"].as_str().unwrap().to_owned(),
            planned: PlannedLayer {
                media_type: layer["mediaType"].as_str().unwrap().to_owned(),
                digest: layer["digest"].as_str().unwrap().to_owned(),
                size: layer["size"].as_u64().unwrap(),
                // skillport's images hold the files at the layer's root.
                in_folder: false,
            },
        });
    }
    pushed
}

/// `SKILL.md` and 49 text files of ~4 KiB (or, for the big one, 100 MB of random bytes).
fn write_skill(dir: &Path, name: &str, seed: usize, big: bool) {
    std::fs::create_dir_all(dir.join("references")).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: Benchmark skill {seed}. Use when measuring.\n---\nBody.\n"),
    )
    .unwrap();
    let mut state = (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for file in 1..SMALL_FILES {
        let mut text = String::with_capacity(SMALL_FILE_BYTES);
        while text.len() < SMALL_FILE_BYTES {
            let _ = write!(text, "w{} ", next() % 5000);
        }
        std::fs::write(dir.join("references").join(format!("r{file:02}.md")), text).unwrap();
    }
    if big {
        let mut file = std::fs::File::create(dir.join("model.bin")).unwrap();
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..(BIG_BYTES >> 20) {
            for bytes in chunk.chunks_mut(8) {
                bytes.copy_from_slice(&next().to_le_bytes()[..bytes.len()]);
            }
            file.write_all(&chunk).unwrap();
        }
    }
}

/// The plan the operator writes: every skill pinned and its layer named (`layers`; an
/// operator before they were named wrote none), the pull secret, the CA.
fn write_plan(work: &Path, skills: &[Pushed], auth: &Path, ca: &Path, layers: bool) -> PathBuf {
    let plan = FetchPlan {
        skills: skills
            .iter()
            .map(|skill| PlannedSkill {
                layer: layers.then(|| skill.planned.clone()),
                ..PlannedSkill::image(&skill.name, &skill.pinned)
            })
            .collect(),
        pull_secrets: vec![CredentialFile {
            name: "bench".to_owned(),
            path: auth.display().to_string(),
        }],
        ca_files: vec![ca.display().to_string()],
        ..FetchPlan::new()
    };
    // Each plan in a folder of its own: fetch reads the layers file beside the plan.
    let dir = work.join(if layers {
        "plan"
    } else {
        "plan-without-layers"
    });
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plan.json");
    std::fs::write(&path, plan.to_json()).unwrap();
    if let Some(text) = plan.layers_json() {
        std::fs::write(dir.join(LAYERS_FILE), text).unwrap();
    }
    path
}

/// A curl config (credentials in a file, not argv): every layer blob to /dev/null, in parallel.
fn write_curl_config(
    path: &Path,
    registry: &Registry,
    credentials: Option<(&str, &str)>,
    ca: &Path,
    skills: &[Pushed],
) {
    let mut config = format!(
        "silent\nfail\nparallel\nparallel-max = {}\ncacert = \"{}\"\n",
        skills.len().max(1),
        ca.display()
    );
    if let Some((user, password)) = credentials {
        let _ = writeln!(config, "user = \"{user}:{password}\"");
    }
    for skill in skills {
        let _ = write!(
            config,
            "url = \"https://{}/v2/skills/{}/blobs/{}\"\noutput = \"/dev/null\"\n",
            registry.host(),
            skill.name,
            skill.layer
        );
    }
    std::fs::write(path, config).unwrap();
}

fn fetch(binary: &Path, plan: &Path, into: &Path) -> Duration {
    timed(
        Command::new(binary)
            .args(["fetch", "--plan"])
            .arg(plan)
            .arg("--into")
            .arg(into)
            .arg("--termination-log")
            .arg(into.with_extension("log"))
            .env_clear(),
    )
}

/// `crane export IMAGE - | tar -x -C DIR` per skill, `parallel` at a time.
fn crane_loop(
    crane: &Path,
    docker_config: &Path,
    ca: &Path,
    skills: &[Pushed],
    out: &Path,
    parallel: usize,
) -> Duration {
    let start = Instant::now();
    for batch in skills.chunks(parallel) {
        let children: Vec<_> = batch
            .iter()
            .map(|skill| {
                let dest = out.join(&skill.name);
                std::fs::create_dir_all(&dest).unwrap();
                Command::new("sh")
                    .arg("-c")
                    .arg("\"$0\" export \"$1\" - | tar -x -C \"$2\"")
                    .arg(crane)
                    .arg(&skill.pinned)
                    .arg(&dest)
                    .env("DOCKER_CONFIG", docker_config)
                    .env("SSL_CERT_FILE", ca)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "crane export | tar failed");
        }
    }
    start.elapsed()
}

/// kagent's skills-init through its wrapper: `PROGRAM OUT_DIR IMAGE…`, with the Docker config
/// and the CA in the environment.
fn kagent_run(
    program: &Path,
    docker_config: &Path,
    ca: &Path,
    skills: &[Pushed],
    out: &Path,
) -> Duration {
    let images: Vec<&str> = skills.iter().map(|skill| skill.pinned.as_str()).collect();
    timed(
        Command::new(program)
            .env("DOCKER_CONFIG", docker_config)
            .env("SSL_CERT_FILE", ca)
            .arg(out)
            .args(images),
    )
}

fn timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    let output = command.output().unwrap();
    let elapsed = start.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

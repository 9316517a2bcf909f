//! Install benchmark: 20 small skills (50 files, ~200 KB each) from a TLS + basic-auth
//! registry into a fresh project, against `skillport fetch` of the same 20 pinned images, and
//! `install` again when everything is up to date; and, when npm can provide it, `npx skills
//! add` (vercel-labs/skills) of the same 20 skills from a local git repository.
//!
//! In one run, per round, in a rotating order:
//! - `skillport fetch` with a plan of the 20 pinned images into a fresh folder;
//! - `skillport install` of a `skillport.json` listing the same 20 pinned images, into a fresh
//!   project with a fresh store (every image pulled into the store, then unpacked);
//! - `skillport install` again (a tree hash per folder, no network);
//! - `npx skills add REPO --skill '*' --agent claude-code --copy -y` into a fresh project.
//!
//! Run: `cargo build --release -p skillport && cargo bench -p skillport-install --bench install`.
//! `SKILLPORT_BIN` picks another binary; `SKILLPORT_BENCH_ROUNDS` sets the rounds (default 5);
//! `SKILLPORT_BENCH_NPX=0` leaves npx out; `SKILLPORT_BENCH_AUTH=none` serves TLS without
//! basic auth.

#![allow(clippy::cast_precision_loss, clippy::too_many_lines)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use skillport_fetch::plan::{CredentialFile, FetchPlan, PlannedSkill};
use skillport_testkit::bench;

const SKILLS: usize = 20;
const FILES: usize = 50;
const FILE_BYTES: usize = 4 << 10;

fn main() {
    if !bench::started_by_cargo_bench() {
        println!("install benchmark: run with `cargo bench -p skillport-install --bench install`");
        return;
    }
    let binary = bench::skillport_binary();
    let rounds = bench::rounds(5);
    let work = tempfile::tempdir().unwrap();
    let registry = bench::registry();
    let auth = registry.docker_config(&work.path().join("auth"));
    let ca = registry.ca_file().unwrap().to_path_buf();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let skillport = |store: &Path, cwd: &Path| {
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .env("HOME", &home)
            .env("SKILLPORT_STORE", store)
            .current_dir(cwd);
        command
    };

    eprintln!("preparing {SKILLS} skills of {FILES} files …");
    let repo = work.path().join("repo");
    let build_store = work.path().join("build-store");
    let mut pinned = Vec::new();
    for index in 0..SKILLS {
        let name = format!("bench-skill-{index:02}");
        let dir = repo.join("skills").join(&name);
        write_skill(&dir, &name, index);
        let remote = format!("{}/skills/{name}:1", registry.host());
        let local = format!("{name}:1");
        run(skillport(&build_store, work.path())
            .args(["build", "-t", &local])
            .arg(&dir));
        let pushed = run(skillport(&build_store, work.path())
            .args(["push", "--ca-file"])
            .arg(&ca)
            .arg("--authfile")
            .arg(&auth)
            .args([&local, &remote, "--json"]));
        let digest: serde_json::Value = serde_json::from_str(&pushed).unwrap();
        pinned.push((
            name,
            format!("{remote}@{}", digest["digest"].as_str().unwrap()),
        ));
    }
    let plan = FetchPlan {
        skills: pinned
            .iter()
            .map(|(name, image)| PlannedSkill::image(name, image))
            .collect(),
        pull_secrets: vec![CredentialFile {
            name: "bench".to_owned(),
            path: auth.display().to_string(),
        }],
        ca_files: vec![ca.display().to_string()],
        ..FetchPlan::new()
    };
    let plan_path = work.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_json()).unwrap();
    let manifest: serde_json::Map<String, serde_json::Value> = pinned
        .iter()
        .map(|(name, image)| (name.clone(), serde_json::json!({"image": image})))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({"skills": manifest})).unwrap();
    let npx = std::env::var("SKILLPORT_BENCH_NPX").map_or(true, |v| v != "0") && git_repo(&repo);

    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let dir = tempfile::tempdir_in(work.path()).unwrap();
        for slot in 0..4 {
            let which = (slot + round) % 4;
            let elapsed = match which {
                0 => timed(
                    skillport(&dir.path().join("unused"), dir.path())
                        .args(["fetch", "--plan"])
                        .arg(&plan_path)
                        .arg("--into")
                        .arg(dir.path().join("fetched")),
                ),
                1 | 2 => {
                    let project = dir.path().join("project");
                    let store = dir.path().join("store");
                    if which == 2 && !project.join("skillport.lock.json").is_file() {
                        continue;
                    }
                    std::fs::create_dir_all(&project).unwrap();
                    std::fs::write(project.join("skillport.json"), &manifest).unwrap();
                    timed(
                        skillport(&store, &project)
                            .args(["install", "--ca-file"])
                            .arg(&ca)
                            .arg("--authfile")
                            .arg(&auth),
                    )
                }
                _ if npx => {
                    let project = dir.path().join("npx");
                    std::fs::create_dir_all(&project).unwrap();
                    timed(
                        Command::new("npx")
                            .args(["-y", "skills", "add"])
                            .arg(&repo)
                            .args(["--skill", "*", "--agent", "claude-code", "--copy", "-y"])
                            .env("HOME", &home)
                            .env("DISABLE_TELEMETRY", "1")
                            .env("DO_NOT_TRACK", "1")
                            .current_dir(&project),
                    )
                }
                _ => continue,
            };
            times[which].push(elapsed);
        }
        // The up-to-date run needs the installed project: run it now if its slot came first.
        if times[2].len() <= round {
            let project = dir.path().join("project");
            times[2].push(timed(
                skillport(&dir.path().join("store"), &project)
                    .args(["install", "--ca-file"])
                    .arg(&ca)
                    .arg("--authfile")
                    .arg(&auth),
            ));
        }
    }
    let [fetch, install, again, npx_times] = times.map(|t| bench::median(&t));
    let mut report = String::new();
    let _ = writeln!(
        report,
        "\ninstall {SKILLS} pinned skills ({FILES} files each) from TLS + basic auth, median of {rounds}"
    );
    let _ = writeln!(
        report,
        "  skillport fetch (the same 20)        {:>8.1} ms",
        ms(fetch)
    );
    let _ = writeln!(
        report,
        "  skillport install, fresh store       {:>8.1} ms",
        ms(install)
    );
    let _ = writeln!(
        report,
        "  skillport install, up to date        {:>8.1} ms",
        ms(again)
    );
    if npx {
        let _ = writeln!(
            report,
            "  npx skills add (local git repo)      {:>8.1} ms",
            ms(npx_times)
        );
    } else {
        let _ = writeln!(
            report,
            "  npx skills add                       not run (no npx, or SKILLPORT_BENCH_NPX=0)"
        );
    }
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    let ratio = install.as_secs_f64() / fetch.as_secs_f64();
    let _ = writeln!(
        report,
        "\ninstall / fetch:   {ratio:.2}x  (target <= 1.10: {})",
        verdict(ratio <= 1.10)
    );
    let _ = writeln!(
        report,
        "up to date:        {:.1} ms (target < 50 ms: {})",
        ms(again),
        verdict(again < Duration::from_millis(50))
    );
    if npx {
        let _ = writeln!(
            report,
            "npx skills / install: {:.2}x",
            npx_times.as_secs_f64() / install.as_secs_f64()
        );
    }
    print!("{report}");
}

/// `SKILL.md` and 49 more files of ~4 KiB that compress like text.
fn write_skill(dir: &Path, name: &str, seed: usize) {
    std::fs::create_dir_all(dir.join("references")).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: Benchmark skill {seed}. Use when measuring.\n---\nBody.\n"),
    )
    .unwrap();
    for file in 1..FILES {
        let mut text = String::with_capacity(FILE_BYTES);
        let mut word = seed * 7919 + file * 104_729;
        while text.len() < FILE_BYTES {
            word = word
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let _ = write!(text, "w{} ", word % 5000);
        }
        std::fs::write(dir.join("references").join(format!("r{file:02}.md")), text).unwrap();
    }
}

/// Makes `repo` a git repository with one commit (for `npx skills add`); false without git.
fn git_repo(repo: &Path) -> bool {
    let git = |args: &[&str]| {
        Command::new("git")
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
            ])
            .args(args)
            .current_dir(repo)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    git(&["init", "-q", "-b", "main"])
        && git(&["add", "."])
        && git(&["commit", "-q", "-m", "skills"])
        && Command::new("npx")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    run(command);
    start.elapsed()
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

//! Pull benchmark: 20 skills (19 small, one 100 MB) from registries on loopback into a folder.
//!
//! In one run, on the same images:
//! - skillport: all 20 exported concurrently by one client (`Client::export`), in a child
//!   process of this bench so that its peak RSS (VmHWM) is its own;
//! - a loop of `skopeo copy docker://… dir:…` + `tar -xzf` per skill (what init scripts do);
//! - a loop of `oras pull` (the oras-py SDK, one Python process per skill, as a CLI loop
//!   would be; it unpacks the layer itself), against the *plain* registry: oras-py fails against login + TLS
//!   here (see shared/TESTING.md), which makes its loop, if anything, faster than it would be;
//! - `curl` of the 100 MB blob alone, against skillport pulling that one image into a store.
//!
//! Run: `cargo bench -p skillport-registry --bench pull` (needs docker-registry, skopeo, curl,
//! GNU tar and target/test-venv from scripts/test.sh). `SKILLPORT_BENCH_ROUNDS` sets rounds.

// A benchmark report: rounded display values, and one long main that reads top to bottom.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skillport_oci::{BuildRequest, Reference, Store};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress};
use skillport_testkit::{Registry, venv_tool};

const SKILLS: usize = 20;
const BIG: usize = 19;
const BIG_BYTES: usize = 100 << 20;

fn main() {
    if std::env::var_os("SKILLPORT_BENCH_CHILD").is_some() {
        child();
        return;
    }
    // cargo bench passes --bench; `cargo test --benches` does not, and should not start this.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pull benchmark: run with `cargo bench -p skillport-registry --bench pull`");
        return;
    }
    let rounds: usize = std::env::var("SKILLPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let secure = Registry::tls_basic_auth();
    let plain = Registry::plain();
    let authfile = secure.docker_config(work.path());
    let ca = secure.ca_file().unwrap().to_path_buf();

    eprintln!(
        "preparing {SKILLS} skills (one of {} MiB) …",
        BIG_BYTES >> 20
    );
    let store = Store::open(&work.path().join("store")).unwrap();
    let names = build_skills(&store, work.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let secure_client = client(std::slice::from_ref(&authfile), vec![ca.clone()]);
    let plain_client = client(&[], vec![]);
    let mut manifests = Vec::new();
    let mut big_layer = None;
    for name in &names {
        let local: Reference = format!("{name}:1").parse().unwrap();
        for (registry, client) in [(&secure, &secure_client), (&plain, &plain_client)] {
            let remote: Reference = format!("{}/skills/{name}:1", registry.host())
                .parse()
                .unwrap();
            runtime
                .block_on(client.push(&store, &local, &remote, Arc::new(NoProgress)))
                .unwrap();
        }
        let image = store.resolve(&local).unwrap();
        let index: skillport_oci::spec::ImageIndex =
            store.read_json("index", &image.descriptor.digest).unwrap();
        let amd64 = skillport_oci::pick_manifest(&index).unwrap().digest.clone();
        let manifest: skillport_oci::spec::ImageManifest =
            store.read_json("manifest", &amd64).unwrap();
        if manifests.len() == BIG {
            big_layer = Some(manifest.layers[0].digest.clone());
        }
        manifests.push(amd64);
    }

    let mut ours = Vec::new();
    let mut rss = Vec::new();
    let mut skopeo = Vec::new();
    let mut oras = Vec::new();
    let mut curl = Vec::new();
    let mut ours_blob = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let out = tempfile::tempdir_in(work.path()).unwrap();
        let (time, hwm) = run_child(&secure, &authfile, &ca, &names, &out.path().join("ours"));
        ours.push(time);
        rss.push(hwm);
        skopeo.push(skopeo_loop(
            &secure,
            &authfile,
            &names,
            &out.path().join("skopeo"),
        ));
        oras.push(oras_loop(
            &plain,
            &names,
            &manifests,
            &out.path().join("oras"),
        ));
        curl.push(curl_blob(
            &secure,
            &names[BIG],
            big_layer.as_ref().unwrap(),
            &out.path().join("blob"),
        ));
        let fresh = Store::open(&out.path().join("store")).unwrap();
        let big: Reference = format!("{}/skills/{}:1", secure.host(), names[BIG])
            .parse()
            .unwrap();
        let start = Instant::now();
        runtime
            .block_on(secure_client.pull(&fresh, &big, Arc::new(NoProgress)))
            .unwrap();
        ours_blob.push(start.elapsed());
    }

    let (ours, skopeo, oras) = (median(&ours), median(&skopeo), median(&oras));
    let (curl, ours_blob) = (median(&curl), median(&ours_blob));
    let hwm = rss.iter().max().copied().unwrap_or(0);
    let mb = |d: Duration| BIG_BYTES as f64 / 1e6 / d.as_secs_f64();
    println!();
    println!(
        "pull {SKILLS} skills (19 small, one {} MiB), median of {rounds}",
        BIG_BYTES >> 20
    );
    println!(
        "  skillport (concurrent, TLS+auth)   {:>8.3} s   peak RSS {:.1} MiB",
        ours.as_secs_f64(),
        hwm as f64 / 1024.0
    );
    println!(
        "  skopeo copy + tar loop (TLS+auth)  {:>8.3} s",
        skopeo.as_secs_f64()
    );
    println!(
        "  oras pull loop (plain HTTP)        {:>8.3} s",
        oras.as_secs_f64()
    );
    println!("the {} MiB blob alone", BIG_BYTES >> 20);
    println!(
        "  curl                               {:>8.3} s   {:.0} MB/s",
        curl.as_secs_f64(),
        mb(curl)
    );
    println!(
        "  skillport pull                     {:>8.3} s   {:.0} MB/s",
        ours_blob.as_secs_f64(),
        mb(ours_blob)
    );
    println!();
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    let vs_skopeo = skopeo.as_secs_f64() / ours.as_secs_f64();
    let vs_oras = oras.as_secs_f64() / ours.as_secs_f64();
    let vs_curl = curl.as_secs_f64() / ours_blob.as_secs_f64();
    println!(
        "skopeo loop / skillport: {vs_skopeo:.2}x  (target >= 3x: {})",
        verdict(vs_skopeo >= 3.0)
    );
    println!(
        "oras loop / skillport:   {vs_oras:.2}x  (target >= 2x: {})",
        verdict(vs_oras >= 2.0)
    );
    println!(
        "throughput vs curl:      {:.0}%  (target >= 80%: {})",
        vs_curl * 100.0,
        verdict(vs_curl >= 0.8)
    );
    println!(
        "peak RSS:                {:.1} MiB  (target <= 30 MiB: {})",
        hwm as f64 / 1024.0,
        verdict(hwm <= 30 * 1024)
    );
}

fn client(authfiles: &[PathBuf], ca_files: Vec<PathBuf>) -> Client {
    let files = authfiles
        .iter()
        .map(|p| AuthFile::read(p).unwrap())
        .collect();
    Client::new(
        Credentials::from_files(files),
        ClientOptions {
            ca_files,
            ..ClientOptions::default()
        },
    )
    .unwrap()
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

/// Runs the skillport side in a child process; returns its wall time and peak RSS in KiB.
fn run_child(
    registry: &Registry,
    authfile: &Path,
    ca: &Path,
    names: &[String],
    out: &Path,
) -> (Duration, u64) {
    let start = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .env("SKILLPORT_BENCH_CHILD", "1")
        .arg(registry.host())
        .arg(authfile)
        .arg(ca)
        .arg(out)
        .args(names)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(output.status.success(), "skillport child failed");
    let hwm = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    (elapsed, hwm)
}

/// The child: export every skill concurrently, then print VmHWM (KiB).
fn child() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, authfile, ca, out) = (&args[0], &args[1], &args[2], PathBuf::from(&args[3]));
    let client = client(&[PathBuf::from(authfile)], vec![PathBuf::from(ca)]);
    std::fs::create_dir_all(&out).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let exports = args[4..].iter().map(|name| {
            let reference: Reference = format!("{host}/skills/{name}:1").parse().unwrap();
            let dest = out.join(name);
            let client = client.clone();
            async move { client.export(&reference, &dest, Arc::new(NoProgress)).await }
        });
        for result in futures_util::future::join_all(exports).await {
            result.unwrap();
        }
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    println!("{hwm}");
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn untar(layer: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    // --force-local: a file name with a colon (sha256:…) is not a remote host.
    run(Command::new("tar")
        .args(["--force-local", "-xzf"])
        .arg(layer)
        .arg("-C")
        .arg(dest));
}

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
        untar(&dir.join(hex), &out.join("skills").join(name));
    }
    start.elapsed()
}

fn oras_loop(
    registry: &Registry,
    names: &[String],
    manifests: &[skillport_oci::Digest],
    out: &Path,
) -> Duration {
    let python = venv_tool("python");
    // oras-py unpacks a tar+gzip layer itself (it takes it for a packed folder), so this is
    // the whole job for each skill.
    let script = "import sys\nfrom oras.client import OrasClient\n\
OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])\n";
    let start = Instant::now();
    for (name, manifest) in names.iter().zip(manifests) {
        let dest = out.join("skills").join(name);
        run(Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(format!("{}/skills/{name}@{manifest}", registry.host()))
            .arg(&dest));
        assert!(dest.join("SKILL.md").is_file(), "oras unpacked {name}");
    }
    start.elapsed()
}

fn curl_blob(
    registry: &Registry,
    name: &str,
    layer: &skillport_oci::Digest,
    out: &Path,
) -> Duration {
    let (user, password) = registry.credentials().unwrap();
    let start = Instant::now();
    // Credentials through a config on stdin, not argv.
    let mut child = Command::new("curl")
        .args(["-sSf", "-K", "-", "-o"])
        .arg(out)
        .arg("--cacert")
        .arg(registry.ca_file().unwrap())
        .arg(format!("{}/v2/skills/{name}/blobs/{layer}", registry.url()))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "user = \"{user}:{password}\"").unwrap();
    assert!(child.wait().unwrap().success(), "curl failed");
    start.elapsed()
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

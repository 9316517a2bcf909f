// Layer build throughput against the obvious peer, `tar -c | gzip`, on the same files in the
// same run (so both see the same machine, disk and page cache).
//
// Generates a 1,000-file, 50 MiB skill in a temporary folder — mostly text-like content from a
// seeded word list (compressible, like Markdown and scripts) and some random bytes (images,
// archives) — then times ROUNDS rounds, alternating, of:
//   ours: `skillport_skill::walk` + `skillport_oci::layer_only` into a buffered temp file
//         (which also computes both SHA-256 digests, as a real build does);
//   peer: `tar -c --sort=name -C DIR . | gzip -6 > FILE` through `bash -c`.
// Prints medians, MB/s and the ratio ours/peer; the target is a ratio of at most 1.2.
//
// Run: `cargo bench -p skillport-oci --bench build` (needs GNU tar and gzip on PATH).
// `SKILLPORT_BENCH_ROUNDS=N` changes the number of rounds (default 3).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 1_000;
const TOTAL_BYTES: u64 = 50 << 20;
/// The share of bytes that are random (incompressible).
const BINARY_SHARE: f64 = 0.15;
/// How many of the files are binary.
const BINARY_FILES: usize = 50;
const TARGET_RATIO: f64 = 1.2;

/// SplitMix64: a seeded PRNG, so every run builds the same skill.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A float in [0, 1).
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
        let value = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        value
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Markdown-ish text: words from a fixed list, lines, an occasional heading or code line.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 64] = [
            "the",
            "a",
            "to",
            "of",
            "and",
            "in",
            "is",
            "for",
            "with",
            "on",
            "skill",
            "agent",
            "file",
            "image",
            "layer",
            "digest",
            "registry",
            "manifest",
            "folder",
            "build",
            "export",
            "install",
            "validate",
            "reference",
            "tag",
            "store",
            "script",
            "run",
            "when",
            "use",
            "this",
            "that",
            "returns",
            "reads",
            "writes",
            "table",
            "column",
            "value",
            "error",
            "check",
            "before",
            "after",
            "each",
            "every",
            "option",
            "flag",
            "command",
            "output",
            "input",
            "format",
            "json",
            "yaml",
            "markdown",
            "pdf",
            "page",
            "section",
            "example",
            "note",
            "see",
            "also",
            "data",
            "model",
            "prompt",
            "tool",
        ];
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            match self.below(40) {
                0 => out.extend_from_slice(b"\n## "),
                1 => out.extend_from_slice(b"\n    $ skillport "),
                _ => {}
            }
            let words = 6 + self.below(12);
            for _ in 0..words {
                #[allow(clippy::cast_possible_truncation)] // below(64) fits usize
                let word = WORDS[self.below(WORDS.len() as u64) as usize];
                out.extend_from_slice(word.as_bytes());
                out.push(b' ');
            }
            out.push(b'\n');
        }
        out.truncate(len);
        out
    }
}

/// Sizes for `count` files summing to exactly `total`, spread between 0.1× and 1.9× the mean.
fn sizes(rng: &mut Rng, count: usize, total: u64) -> Vec<u64> {
    let weights: Vec<f64> = (0..count).map(|_| 0.1 + 1.8 * rng.unit()).collect();
    let sum: f64 = weights.iter().sum();
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // sizes well below 2^52, rounded down
    let mut sizes: Vec<u64> = weights
        .iter()
        .map(|w| (w / sum * total as f64) as u64)
        .collect();
    let short = total - sizes.iter().sum::<u64>();
    sizes[0] += short;
    sizes
}

/// Writes the skill into `dir`; returns (files, bytes).
fn generate(dir: &Path) -> (usize, u64) {
    let mut rng = Rng(0x5EED_5EED);
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {}\ndescription: A large generated skill for the layer benchmark.\n---\n\n# Bench\n",
            dir.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let skill_md = fs::metadata(dir.join("SKILL.md")).unwrap().len();
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let binary_bytes = (TOTAL_BYTES as f64 * BINARY_SHARE) as u64;
    let text_bytes = TOTAL_BYTES - binary_bytes - skill_md;
    let text_files = FILES - 1 - BINARY_FILES;

    let folders = [
        "references",
        "references/api",
        "references/guides",
        "references/guides/advanced",
        "scripts",
        "scripts/lib",
        "assets",
        "assets/templates",
    ];
    for folder in folders {
        fs::create_dir_all(dir.join(folder)).unwrap();
    }
    let text_folders = &folders[..6];
    for (i, size) in sizes(&mut rng, text_files, text_bytes)
        .into_iter()
        .enumerate()
    {
        let folder = text_folders[i % text_folders.len()];
        let extension = if folder.starts_with("scripts") {
            "py"
        } else {
            "md"
        };
        let content = rng.text(usize::try_from(size).unwrap());
        fs::write(
            dir.join(format!("{folder}/file-{i:04}.{extension}")),
            content,
        )
        .unwrap();
    }
    for (i, size) in sizes(&mut rng, BINARY_FILES, binary_bytes)
        .into_iter()
        .enumerate()
    {
        let folder = ["assets", "assets/templates"][i % 2];
        let content = rng.bytes(usize::try_from(size).unwrap());
        fs::write(dir.join(format!("{folder}/blob-{i:03}.bin")), content).unwrap();
    }
    let entries = skillport_skill::walk(dir).unwrap();
    let mut files = 0;
    let mut bytes = 0;
    for entry in &entries {
        if let skillport_skill::EntryKind::File { size, .. } = entry.kind {
            files += 1;
            bytes += size;
        }
    }
    (files, bytes)
}

fn ours(dir: &Path, out: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let entries = skillport_skill::walk(dir).expect("walking the skill");
    let file = File::create(out).expect("creating the output file");
    let layer =
        skillport_oci::layer_only(&entries, None, BufWriter::with_capacity(256 << 10, file))
            .expect("writing the layer");
    let elapsed = started.elapsed();
    assert_eq!(fs::metadata(out).unwrap().len(), layer.size);
    (elapsed, layer.size)
}

fn peer(dir: &Path, out: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let status = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; tar -c --sort=name -C \"$1\" . | gzip -6 > \"$2\"")
        .arg("bash")
        .arg(dir)
        .arg(out)
        .status()
        .expect("running bash (tar and gzip must be installed)");
    let elapsed = started.elapsed();
    assert!(status.success(), "tar | gzip failed: {status}");
    (elapsed, fs::metadata(out).unwrap().len())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)] // a display value
    let megabytes = bytes as f64 / 1e6;
    megabytes / time.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` passes nothing and
    // should not spend a minute here.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("layer build benchmark: run with `cargo bench -p skillport-oci --bench build`");
        return;
    }
    let rounds: usize = std::env::var("SKILLPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);

    let work = tempfile::Builder::new()
        .prefix("skillport-bench-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("bench-skill");
    fs::create_dir(&dir).unwrap();
    let generating = Instant::now();
    let (files, bytes) = generate(&dir);
    println!(
        "generated {files} files, {:.1} MiB ({:.0}% random bytes) in {:.1}s under {}",
        mb(bytes),
        BINARY_SHARE * 100.0,
        generating.elapsed().as_secs_f64(),
        work.path().display()
    );

    // One untimed pass of each so both start with the files in the page cache.
    let ours_out = work.path().join("ours.tar.gz");
    let peer_out = work.path().join("peer.tar.gz");
    ours(&dir, &ours_out);
    peer(&dir, &peer_out);

    let mut ours_times = Vec::new();
    let mut peer_times = Vec::new();
    let (mut ours_size, mut peer_size) = (0, 0);
    for round in 1..=rounds {
        let (time, size) = ours(&dir, &ours_out);
        ours_times.push(time);
        ours_size = size;
        let (peer_time, size) = peer(&dir, &peer_out);
        peer_times.push(peer_time);
        peer_size = size;
        println!(
            "round {round}/{rounds}: ours {:.3}s, tar|gzip {:.3}s",
            time.as_secs_f64(),
            peer_time.as_secs_f64()
        );
    }
    let ours_median = median(ours_times);
    let peer_median = median(peer_times);
    let ratio = ours_median.as_secs_f64() / peer_median.as_secs_f64();
    println!(
        "ours     (walk + layer_only, sha256 x2): median {:.3}s  {:>6.1} MB/s  -> {:.1} MiB",
        ours_median.as_secs_f64(),
        mb_per_s(bytes, ours_median),
        mb(ours_size)
    );
    println!(
        "tar|gzip (tar --sort=name | gzip -6):   median {:.3}s  {:>6.1} MB/s  -> {:.1} MiB",
        peer_median.as_secs_f64(),
        mb_per_s(bytes, peer_median),
        mb(peer_size)
    );
    println!(
        "ratio ours/peer: {ratio:.2} (target <= {TARGET_RATIO}): {}",
        if ratio <= TARGET_RATIO {
            "meets the target"
        } else {
            "MISSES the target"
        }
    );
}

fn mb(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // a display value
    let value = bytes as f64 / f64::from(1u32 << 20);
    value
}

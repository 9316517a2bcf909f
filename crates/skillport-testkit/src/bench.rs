//! What every benchmark that runs the release `skillport` next to a peer starts with: whether
//! `cargo bench` started it, the binary, the rounds, and the median.

use std::path::PathBuf;
use std::time::Duration;

use crate::workspace_root;

/// Whether `cargo bench` runs this (it passes `--bench`); `cargo test --benches` does not, and
/// a benchmark should then say how to run it and stop.
pub fn started_by_cargo_bench() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The `skillport` to measure: `SKILLPORT_BIN`, else the workspace's release build, which must
/// exist.
pub fn skillport_binary() -> PathBuf {
    let binary = std::env::var_os("SKILLPORT_BIN").map_or_else(
        || workspace_root().join("target/release/skillport"),
        PathBuf::from,
    );
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --release -p skillport` first",
        binary.display()
    );
    binary
}

/// The registry a benchmark serves its skills from: TLS with basic auth, or TLS alone with
/// `SKILLPORT_BENCH_AUTH=none`. The distribution registry checks a bcrypt hash on every
/// basic-auth request, which a token registry does not: the second shows what requests cost
/// without it.
pub fn registry() -> crate::Registry {
    if std::env::var("SKILLPORT_BENCH_AUTH").is_ok_and(|auth| auth == "none") {
        crate::Registry::start(crate::RegistryOptions {
            tls: true,
            ..crate::RegistryOptions::default()
        })
    } else {
        crate::Registry::tls_basic_auth()
    }
}

/// `SKILLPORT_BENCH_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("SKILLPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The middle value (the upper one of an even count); zero for none.
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

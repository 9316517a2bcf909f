// One fixture per case: tests/fixtures/validate/<case>/<skill-folder>/ holds a SKILL.md (and
// sometimes a skill.yaml); the inner folder's name is what `name` is compared with. Each
// snapshot shows the exact outcome of `load` in strict and in lenient mode.

use std::fmt::Write as _;
use std::path::Path;

use skillport_skill::{LoadError, Mode, load};

/// The outcome of loading `dir`, as text: the diagnostics, or `ok` with what was read.
fn outcome(dir: &Path, mode: Mode) -> String {
    let mut out = String::new();
    match load(dir, mode) {
        Ok(skill) => {
            for warning in &skill.warnings {
                writeln!(out, "{warning}").unwrap();
            }
            writeln!(
                out,
                "ok: {}",
                serde_json::to_string(&skill.frontmatter).unwrap()
            )
            .unwrap();
            if let Some(card) = &skill.card {
                writeln!(
                    out,
                    "card: {}@{} in {}",
                    card.metadata.name, card.metadata.version, card.metadata.namespace
                )
                .unwrap();
            }
        }
        Err(LoadError::Invalid { diagnostics, .. }) => {
            for diagnostic in &diagnostics {
                writeln!(out, "{diagnostic}").unwrap();
            }
        }
        Err(other) => writeln!(out, "{other}").unwrap(),
    }
    out
}

#[test]
fn fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("fixtures/validate/*/*", |path| {
        // Relative to the crate, so the paths in the snapshots are the same on every machine.
        let dir = path.strip_prefix(root).unwrap();
        let report = format!(
            "strict:\n{}\nlenient:\n{}",
            outcome(dir, Mode::Strict),
            outcome(dir, Mode::Lenient)
        );
        insta::assert_snapshot!(report);
    });
}

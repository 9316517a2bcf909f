// Differential test against the agentskills reference validator (PyPI `skills-ref`, command
// `agentskills`): for every fixture under tests/fixtures/validate, its verdict (valid or
// invalid) must equal ours in strict mode, except for the cases listed, with reasons, in
// tests/fixtures/validate/DIFFERENCES.md — and that list must be exactly the disagreements.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use skillport_skill::{Mode, load};

/// One case's verdicts: (case, reference says, we say).
type Row = (String, String, String);

fn verdict(valid: bool) -> String {
    if valid { "valid" } else { "invalid" }.to_owned()
}

/// `$SKILLPORT_TEST_VENV/bin/agentskills`, else `<workspace>/target/test-venv/bin/agentskills`.
fn agentskills() -> PathBuf {
    let venv = std::env::var_os("SKILLPORT_TEST_VENV").map_or_else(
        || {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .unwrap();
            workspace.join("target/test-venv")
        },
        PathBuf::from,
    );
    let command = venv.join("bin/agentskills");
    assert!(
        command.is_file(),
        "the reference validator is not installed at {}: run scripts/test.sh (it creates \
         target/test-venv with skills-ref), or set SKILLPORT_TEST_VENV to a virtualenv that has \
         `pip install skills-ref`",
        command.display()
    );
    command
}

/// Every `<case>/<skill-folder>` under the fixtures, sorted.
fn fixtures(root: &Path) -> Vec<(String, PathBuf)> {
    let mut cases = Vec::new();
    for case in std::fs::read_dir(root).unwrap() {
        let case = case.unwrap();
        if !case.file_type().unwrap().is_dir() {
            continue;
        }
        for folder in std::fs::read_dir(case.path()).unwrap() {
            let folder = folder.unwrap();
            if folder.file_type().unwrap().is_dir() {
                cases.push((
                    case.file_name().to_string_lossy().into_owned(),
                    folder.path(),
                ));
            }
        }
    }
    cases.sort();
    cases
}

/// The rows of the table in DIFFERENCES.md (lines starting with `|`, minus header and rule).
fn listed_differences(file: &Path) -> BTreeSet<Row> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells[0] != "case" && !cells[0].starts_with("---"))
        .map(|cells| {
            assert!(
                cells.len() == 4 && !cells[3].is_empty(),
                "DIFFERENCES.md: each row needs case | reference says | we say | why: {cells:?}"
            );
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

#[test]
fn verdicts_match_skills_ref_except_where_listed() {
    let agentskills = agentskills();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate");
    let cases = fixtures(&root);
    assert!(
        cases.len() >= 30,
        "expected the fixture table, found {cases:?}"
    );

    let mut found = BTreeSet::new();
    // A few reference processes at a time: each is a Python start-up, about 0.3 s.
    for batch in cases.chunks(8) {
        let children: Vec<_> = batch
            .iter()
            .map(|(_, dir)| {
                Command::new(&agentskills)
                    .arg("validate")
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|error| panic!("running {}: {error}", agentskills.display()))
            })
            .collect();
        for ((case, dir), mut child) in batch.iter().zip(children) {
            let status = child.wait().unwrap();
            let reference_valid = match status.code() {
                Some(0) => true,
                Some(1) => false,
                _ => panic!("agentskills validate {} ended with {status}", dir.display()),
            };
            let ours_valid = load(dir, Mode::Strict).is_ok();
            if reference_valid != ours_valid {
                found.insert((case.clone(), verdict(reference_valid), verdict(ours_valid)));
            }
        }
    }

    let listed = listed_differences(&root.join("DIFFERENCES.md"));
    let new: Vec<_> = found.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "disagreements with skills-ref differ from tests/fixtures/validate/DIFFERENCES.md\n\
         not listed there (case, reference says, we say): {new:#?}\n\
         listed there but not (or no longer) so: {gone:#?}"
    );
}

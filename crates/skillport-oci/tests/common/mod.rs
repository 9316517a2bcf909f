// Helpers shared by the skillport-oci integration tests.

#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use skillport_oci::{BuildRequest, Built, Reference, Store, build};
use skillport_skill::{Mode, load, walk};

/// Writes a small skill named `name` into `parent/name` and returns its folder.
pub fn write_skill(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::create_dir_all(dir.join("references/deep")).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: Summarises CSV files. Use when the user asks about a .csv file.\nlicense: Apache-2.0\nmetadata:\n  version: 1.2.0\n  author: Test Author\n---\n\n# CSV summary\n\nRun `scripts/summarize.py FILE`.\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("scripts/summarize.py"),
        "#!/usr/bin/env python3\nprint('summary')\n",
    )
    .unwrap();
    fs::set_permissions(
        dir.join("scripts/summarize.py"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(
        dir.join("references/deep/notes.md"),
        "# Notes\n\nSome notes.\n",
    )
    .unwrap();
    fs::write(
        dir.join("references/data.bin"),
        (0..=255u8).collect::<Vec<_>>(),
    )
    .unwrap();
    dir
}

/// Builds the skill in `dir` into `store` as `name`.
pub fn build_skill(store: &Store, dir: &Path, name: &str, epoch: Option<u64>) -> Built {
    let skill = load(dir, Mode::Strict).unwrap();
    let entries = walk(dir).unwrap();
    let names = [name.parse::<Reference>().unwrap()];
    build(
        store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: epoch,
            names: &names,
        },
        &mut |_| {},
    )
    .unwrap()
}

/// Every file under `root` (but `.skillport/`) with its content, for before/after comparisons.
pub fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative.starts_with(".skillport") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((relative, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

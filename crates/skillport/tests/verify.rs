//! `skillport verify`, the operator's verify init container, as a process: it indexes mounted
//! skills the way fetch does, and fails with one termination line for an empty mount.

use std::path::Path;
use std::process::Command;

fn verify(dir: &Path, skills: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skillport"));
    command
        .arg("verify")
        .arg("--index")
        .arg(dir.join("index/index.json"))
        .arg("--index-root")
        .arg(dir.join("skills"))
        .arg("--termination-log")
        .arg(dir.join("termination-log"));
    for skill in skills {
        command.arg("--skill").arg(format!(
            "name={skill},path={},image=r.io/skills/{skill}@sha256:{}",
            dir.join("skills").join(skill).display(),
            "b".repeat(64)
        ));
    }
    command.output().expect("running skillport")
}

#[test]
fn verify_writes_the_index_for_mounted_skills_and_fails_on_an_empty_mount() {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(skills.join("pdf")).unwrap();
    std::fs::create_dir_all(skills.join("hollow")).unwrap();
    std::fs::create_dir_all(dir.path().join("index")).unwrap();
    std::fs::write(
        skills.join("pdf/SKILL.md"),
        "---\nname: pdf\ndescription: Reads PDFs. Use it for PDFs.\n---\n# pdf\n",
    )
    .unwrap();

    let ok = verify(dir.path(), &["pdf"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["kind"], "SkillIndex");
    assert_eq!(index["skills"][0]["path"], "pdf");
    assert_eq!(
        index["skills"][0]["digest"],
        format!("sha256:{}", "b".repeat(64))
    );
    assert!(
        index["skills"][0]["treeHash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:"))
    );

    let failed = verify(dir.path(), &["pdf", "hollow"]);
    assert_eq!(failed.status.code(), Some(1));
    let line = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("\"hollow\"") && line.contains("is empty"),
        "{line}"
    );
}

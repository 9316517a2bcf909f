// `load` outside the fixture table: what the file system can do that a fixture cannot show.

use std::fs;
use std::path::Path;

use skillport_skill::{LoadError, Mode, load, scaffold_skill_md};

#[test]
fn folder_name_of_dot_paths_is_resolved() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pdf-tools");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("SKILL.md"), scaffold_skill_md("pdf-tools")).unwrap();
    fs::create_dir(dir.join("scripts")).unwrap();

    for path in [dir.join("."), dir.join("scripts/..")] {
        let skill = load(&path, Mode::Strict)
            .unwrap_or_else(|error| panic!("{}: {error:?}", path.display()));
        assert_eq!(skill.frontmatter.name, "pdf-tools");
        assert_eq!(skill.dir, path);
    }
}

#[test]
fn missing_paths_and_files() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("nope");
    assert!(matches!(
        load(&missing, Mode::Strict),
        Err(LoadError::Read { path, .. }) if path == missing
    ));

    let file = temp.path().join("file");
    fs::write(&file, "x").unwrap();
    let error = load(&file, Mode::Lenient).unwrap_err();
    assert!(matches!(&error, LoadError::NotADirectory { path } if *path == file));
    assert_eq!(
        error.to_string(),
        format!("{} is not a directory", file.display())
    );

    let empty = temp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let error = load(&empty, Mode::Lenient).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("no SKILL.md in {}", empty.display())
    );
}

#[test]
fn invalid_utf8_in_both_files_is_reported_together() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pdf-tools");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("SKILL.md"), b"---\nname: \xff\n---\n").unwrap();
    fs::write(dir.join("skill.yaml"), b"\xfe").unwrap();

    let Err(error @ LoadError::Invalid { .. }) = load(&dir, Mode::Lenient) else {
        panic!("expected invalid");
    };
    assert_eq!(
        error.to_string(),
        format!("{} is not a valid skill (2 errors)", dir.display())
    );
    let LoadError::Invalid { diagnostics, .. } = error else {
        unreachable!()
    };
    let lines: Vec<_> = diagnostics.iter().map(ToString::to_string).collect();
    let at = |file: &str| Path::new(&dir).join(file).display().to_string();
    assert_eq!(
        lines,
        [
            format!(
                "{}: error: file is not valid UTF-8; save it as UTF-8",
                at("SKILL.md")
            ),
            format!(
                "{}: error: file is not valid UTF-8; save it as UTF-8",
                at("skill.yaml")
            ),
        ]
    );
}

#[test]
fn lenient_keeps_warnings_and_strict_reports_them_as_errors() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pdf-tools");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: PDF-Tools\ndescription: Reads PDFs.\nextra: 1\n---\nBody\n",
    )
    .unwrap();

    let skill = load(&dir, Mode::Lenient).unwrap();
    assert_eq!(skill.frontmatter.name, "PDF-Tools");
    assert_eq!(skill.body, "Body\n");
    assert_eq!(skill.warnings.len(), 3, "{:#?}", skill.warnings);
    assert!(skill.card.is_none());

    let Err(LoadError::Invalid { diagnostics, .. }) = load(&dir, Mode::Strict) else {
        panic!("expected invalid");
    };
    assert_eq!(diagnostics.len(), 3);
    assert!(
        diagnostics
            .iter()
            .all(skillport_skill::Diagnostic::is_error)
    );
}

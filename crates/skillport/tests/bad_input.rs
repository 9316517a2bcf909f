// Bad input through the CLI: each case must fail with exit code 1, an `error:` line naming
// the thing at fault, a `hint:` line where there is something to do, and leave the store
// exactly as it was (every file's kind, mode and bytes, ignoring `.skillport/`).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use common::{
    Run, Sandbox, assert_no_temporary_files, assert_store_unchanged, folder_names, path_str, run,
    store_snapshot, tool, write_minimal_skill,
};

/// A sandbox whose store already holds `good:1`, so that "unchanged" means something.
fn seeded() -> Sandbox {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "good");
    sandbox.build(&dir, "good:1");
    sandbox
}

/// Runs `args` (or `command`), and checks the failure: exit code 1, an error line holding
/// every one of `names`, a hint holding `hint` (when given), and an unchanged store.
#[track_caller]
fn refused(sandbox: &Sandbox, args: &[&str], names: &[&str], hint: Option<&str>) -> Run {
    refused_command(sandbox, sandbox.skillport(args), names, hint)
}

#[track_caller]
fn refused_command(
    sandbox: &Sandbox,
    command: std::process::Command,
    names: &[&str],
    hint: Option<&str>,
) -> Run {
    let before = store_snapshot(&sandbox.store());
    let run = run(command).failure();
    let error = run.error();
    for name in names {
        assert!(
            error.contains(name),
            "the error should name {name:?}\n{run}"
        );
    }
    if let Some(hint) = hint {
        let found = run
            .hint()
            .unwrap_or_else(|| panic!("expected a `hint:` line\n{run}"));
        assert!(found.contains(hint), "the hint should say {hint:?}\n{run}");
    }
    assert!(
        !run.stderr.contains("panicked"),
        "a user mistake must not panic\n{run}"
    );
    assert_store_unchanged(&before, &store_snapshot(&sandbox.store()), &run.command);
    assert_no_temporary_files(&sandbox.store());
    // The image that was there still reads.
    sandbox.ok(&["inspect", "good:1"]);
    run
}

fn skill_with(sandbox: &Sandbox, name: &str) -> PathBuf {
    write_minimal_skill(&sandbox.join("bad"), name)
}

#[test]
fn build_without_skill_md() {
    let sandbox = seeded();
    let dir = sandbox.join("bad/empty-skill");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("README.md"), "not a skill\n").unwrap();
    refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["SKILL.md", "bad/empty-skill"],
        Some("skillport init"),
    );
}

#[test]
fn build_with_a_lowercase_skill_md() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "lower");
    fs::rename(dir.join("SKILL.md"), dir.join("skill.md")).unwrap();
    refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["no SKILL.md", "there is a skill.md"],
        Some("rename skill.md to SKILL.md"),
    );
    let run = sandbox.run(&["validate", path_str(&dir)]).failure();
    assert!(run.stdout.contains("there is a skill.md"), "{run}");
}

/// A folder whose name starts with `-` (`-21risk-automation`, from a public collection) is read
/// as an option: the hint says how to name it.
#[test]
fn a_folder_named_like_an_option_gets_a_hint() {
    let sandbox = seeded();
    write_minimal_skill(sandbox.path(), "-21risk-automation");
    let refused = run(sandbox.bare(&["validate", "-21risk-automation"]));
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(
        refused.stderr
            .contains("hint: -21risk-automation is read as an option; to name the folder, write ./-21risk-automation"),
        "{refused}"
    );
    // Read as the folder now (whose skill name the rules refuse, as the hint never claimed).
    let named = run(sandbox.bare(&["validate", "./-21risk-automation"])).failure();
    assert!(
        named
            .stdout
            .contains("./-21risk-automation/SKILL.md:2:1: error: name"),
        "{named}"
    );
}

#[test]
fn build_with_bad_yaml() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "broken");
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: broken\ndescription: [unclosed\n---\nbody\n",
    )
    .unwrap();
    let run = refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["bad/broken"],
        Some("--lenient"),
    );
    // The diagnostic names the file and the line.
    let diagnostic = run
        .stderr
        .lines()
        .find(|line| line.contains("SKILL.md:"))
        .unwrap_or_else(|| panic!("a diagnostic should point into SKILL.md\n{run}"));
    assert!(diagnostic.contains("YAML"), "{run}");
    assert!(
        diagnostic.contains("bad/broken/SKILL.md:3")
            || diagnostic.contains("bad/broken/SKILL.md:4"),
        "the diagnostic names SKILL.md and the line of the problem\n{run}"
    );
}

#[test]
fn build_with_a_name_that_is_not_the_folder_name() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "folder-name");
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: other-name\ndescription: Mismatch.\n---\nbody\n",
    )
    .unwrap();
    let run = refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["bad/folder-name"],
        Some("--lenient"),
    );
    assert!(
        run.stderr.contains("\"other-name\"") && run.stderr.contains("\"folder-name\""),
        "the diagnostic names both names\n{run}"
    );
}

#[test]
fn build_with_a_link_out_of_the_folder() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "leaky");
    symlink("/etc/passwd", dir.join("passwd")).unwrap();
    refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["bad/leaky/passwd", "/etc/passwd"],
        Some("replace the link"),
    );
}

#[test]
fn build_with_a_fifo() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "piped");
    let mut mkfifo = tool("mkfifo", "coreutils");
    mkfifo.arg(dir.join("pipe"));
    run(mkfifo).success();
    refused(
        &sandbox,
        &["build", path_str(&dir)],
        &["bad/piped/pipe", "FIFO"],
        Some("remove it"),
    );
}

#[test]
fn build_with_an_invalid_tag() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "fine");
    refused(
        &sandbox,
        &["build", path_str(&dir), "-t", "Fine_Skill!:1"],
        &["Fine_Skill!:1"],
        Some("NAME[:TAG]"),
    );
}

#[test]
fn build_with_a_digest_as_its_name() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "fine");
    let pinned = format!("fine@sha256:{}", "0".repeat(64));
    refused(
        &sandbox,
        &["build", path_str(&dir), "-t", &pinned],
        &[&pinned, "digest"],
        None,
    );
}

#[test]
fn build_with_a_bad_source_date_epoch() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "fine");
    let mut command = sandbox.skillport(&["build", path_str(&dir)]);
    command.env("SOURCE_DATE_EPOCH", "yesterday");
    refused_command(&sandbox, command, &["SOURCE_DATE_EPOCH", "yesterday"], None);
}

#[test]
fn export_into_a_non_empty_folder_writes_nothing() {
    let sandbox = seeded();
    let parent = sandbox.join("out");
    let dest = parent.join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "mine\n").unwrap();
    refused(
        &sandbox,
        &["export", "good:1", path_str(&dest)],
        &["out/dest", "not an empty folder"],
        None,
    );
    assert_eq!(
        folder_names(&dest),
        ["keep.txt"],
        "nothing added to {dest:?}"
    );
    assert_eq!(fs::read_to_string(dest.join("keep.txt")).unwrap(), "mine\n");
    assert_eq!(
        folder_names(&parent),
        ["dest"],
        "no staging folder left beside the destination"
    );
}

// Pins a bug: output.rs has a hint for UnpackError::DestinationExists, but `ReadError::Unpack`
// is `#[error(transparent)]`, so the UnpackError never shows up in the error chain and the
// hint is never printed.
#[test]
fn export_into_a_non_empty_folder_prints_a_hint() {
    let sandbox = seeded();
    let dest = sandbox.join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "mine\n").unwrap();
    refused(
        &sandbox,
        &["export", "good:1", path_str(&dest)],
        &["dest"],
        Some("empty it"),
    );
}

#[test]
fn unknown_references() {
    let sandbox = seeded();
    let dest = sandbox.join("never-created");
    let cases: [&[&str]; 6] = [
        &["inspect", "nope:1"],
        &["inspect", "good:2"],
        &["export", "nope:1", path_str(&dest)],
        &["rm", "nope:1"],
        &["tag", "nope:1", "other:1"],
        &["inspect", &format!("good@sha256:{}", "a".repeat(64))],
    ];
    for args in cases {
        let run = refused(&sandbox, args, &[args[1]], Some("skillport images"));
        assert!(
            run.error().contains("not in the store"),
            "says what is wrong\n{run}"
        );
    }
    assert!(
        !dest.exists(),
        "export of an unknown image created {dest:?}"
    );
}

#[test]
fn invalid_reference_syntax() {
    let sandbox = seeded();
    let dest = sandbox.join("never-created");
    // (arguments, the reference at fault)
    let cases: [(&[&str], &str); 7] = [
        (&["inspect", "Good:1"], "Good:1"),
        (&["inspect", "good:"], "good:"),
        (&["inspect", "good@sha256:abc"], "good@sha256:abc"),
        (&["export", "bad-:1", path_str(&dest)], "bad-:1"),
        (&["rm", "good::1"], "good::1"),
        (&["tag", "good 1", "other:1"], "good 1"),
        (&["tag", "good:1", "UPPER:1"], "UPPER:1"),
    ];
    for (args, bad) in cases {
        let run = refused(&sandbox, args, &[bad], Some("NAME[:TAG]"));
        assert!(
            run.error().contains("invalid reference"),
            "says what is wrong\n{run}"
        );
    }
    assert!(!dest.exists());
}

#[test]
fn tag_to_a_digest_reference() {
    let sandbox = seeded();
    let pinned = format!("other@sha256:{}", "b".repeat(64));
    refused(&sandbox, &["tag", "good:1", &pinned], &[&pinned], None);
}

#[test]
fn store_that_is_not_an_oci_layout() {
    let sandbox = Sandbox::new();
    let folder = sandbox.join("not-a-store");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("notes.txt"), "my notes\n").unwrap();
    for args in [&["images"][..], &["inspect", "x:1"]] {
        let mut command = sandbox.bare(&["--store", path_str(&folder)]);
        command.args(args);
        let run = run(command).failure();
        assert!(run.error().contains("not-a-store"), "{run}");
        assert!(
            run.hint().is_some_and(|h| h.contains("--store")),
            "hint at --store\n{run}"
        );
        assert_eq!(
            folder_names(&folder),
            ["notes.txt"],
            "nothing written into a folder that is not a store"
        );
    }
}

/// Store and registry options on commands that use neither are refused, naming them, not
/// silently ignored; from the environment (SKILLPORT_STORE) they are not.
#[test]
fn options_a_command_has_no_use_for_are_refused() {
    let sandbox = seeded();
    let dir = skill_with(&sandbox, "fine");
    let store = sandbox.store();
    let refused =
        run(sandbox.bare(&["--store", path_str(&store), "validate", path_str(&dir)])).failure();
    assert!(
        refused
            .error()
            .contains("--store does nothing for validate; remove it"),
        "{refused}"
    );
    let refused = run(sandbox.bare(&["--ca-file", "ca.pem", "--insecure", "init", "x"])).failure();
    assert!(
        refused
            .error()
            .contains("--ca-file, --insecure do nothing for init; remove them"),
        "{refused}"
    );
    assert!(!sandbox.path().join("x").exists(), "{refused}");
    let mut from_env = sandbox.bare(&["validate", path_str(&dir)]);
    from_env.env("SKILLPORT_STORE", sandbox.store());
    run(from_env).success();
}

/// Each command's help lists the store and registry options only where they do something,
/// they work after the command there, and elsewhere they are usage errors.
#[test]
fn store_and_registry_options_belong_to_the_commands_that_use_them() {
    let sandbox = seeded();
    let help = |command: &str| run(sandbox.bare(&[command, "--help"])).success().stdout;
    for (command, store, registries) in [
        ("validate", false, false),
        ("init", false, false),
        ("fetch", false, false),
        ("build", true, false),
        ("images", true, false),
        ("resolve", false, true),
        ("verify-signature", false, true),
        ("push", true, true),
    ] {
        let text = help(command);
        assert_eq!(
            text.contains("--store <DIR>"),
            store,
            "{command} --help:\n{text}"
        );
        for flag in ["--ca-file <FILE>", "--insecure", "--authfile <FILE>"] {
            assert_eq!(
                text.contains(flag),
                registries,
                "{command} --help, {flag}:\n{text}"
            );
        }
    }
    let dir = skill_with(&sandbox, "after");
    let other = sandbox.join("other-store");
    let store = path_str(&other);
    run(sandbox.bare(&["build", path_str(&dir), "-t", "after:1", "--store", store])).success();
    let listed = run(sandbox.bare(&["images", "-q", "--store", store])).success();
    assert_eq!(listed.stdout.trim(), "after:1", "{listed}");
    let misplaced = run(sandbox.bare(&["validate", path_str(&dir), "--store", store]));
    assert_eq!(
        misplaced.status.code(),
        Some(2),
        "a usage error\n{misplaced}"
    );
}

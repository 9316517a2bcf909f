// Reproducible builds, end to end through the CLI: the same files give the same image digest
// whatever their mtimes, owners, permission bits (within the normalised set), path and the
// umask; SOURCE_DATE_EPOCH is the one input besides the files that changes the digest, and
// it also sets `org.opencontainers.image.created`. GNU tar reads the entry mtimes.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::Path;

use common::{
    PRIVATE_MODES, Sandbox, USUAL_MODES, digest_line, path_str, run, sh, tool, tree,
    write_sample_skill,
};

/// `find DIR -exec touch -h -d WHEN {} +`: every entry, links included, gets mtime `when`.
fn touch_all(dir: &Path, when: &str) {
    let mut find = tool("find", "findutils");
    find.arg(dir)
        .args(["-exec", "touch", "-h", "-d", when, "{}", "+"]);
    run(find).success();
}

/// Gives every entry below `dir` (and `dir`) to another owner. Tests run as root in CI; a
/// developer who is not root gets a failure that says so, rather than a silent skip.
fn chown_all(dir: &Path, uid: u32, gid: u32) {
    for path in tree(dir)
        .keys()
        .map(|p| dir.join(p))
        .chain([dir.to_path_buf()])
    {
        lchown(&path, Some(uid), Some(gid)).unwrap_or_else(|err| {
            panic!(
                "chown {} to {uid}:{gid} failed ({err}); this test needs root to give files \
                 another owner (CI runs as root)",
                path.display()
            )
        });
    }
}

#[test]
fn same_files_give_the_same_digest_whatever_mtimes_modes_owners_paths_and_umask() {
    let sandbox = Sandbox::new();
    // Copy A: usual modes, mtimes of now, owned by whoever runs the test.
    let a = write_sample_skill(&sandbox.join("a"), "my-skill", USUAL_MODES);
    // Copy B: private modes, another owner, old mtimes, a deeper path, and files the walk
    // leaves out (hidden, VCS, .skillignore'd).
    let b = write_sample_skill(
        &sandbox.join("somewhere/much/deeper"),
        "my-skill",
        PRIVATE_MODES,
    );
    fs::create_dir_all(b.join(".git")).unwrap();
    fs::write(b.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(b.join(".DS_Store"), [0u8; 16]).unwrap();
    fs::write(b.join(".skillignore"), "*.tmp\n").unwrap();
    fs::write(b.join("scripts/notes.tmp"), "scratch\n").unwrap();
    touch_all(&b, "2001-02-03 04:05:06");
    chown_all(&b, 4242, 4343);
    assert_ne!(
        fs::metadata(a.join("scripts/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        fs::metadata(b.join("scripts/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        "the two copies really differ in modes"
    );

    // A: relative path, default umask, its own store.
    let mut build_a = sandbox.bare(&["--store", "store-a", "build", "my-skill", "-t", "s:1"]);
    build_a.current_dir(sandbox.join("a"));
    let digest_a = digest_line(&run(build_a).success());

    // B: absolute path, umask 077, another store.
    let store_b = sandbox.join("store-b");
    let build_b = sh(
        "umask 077 && exec \"$@\"",
        &[
            env!("CARGO_BIN_EXE_skillport"),
            "--store",
            path_str(&store_b),
            "build",
            path_str(&b),
            "-t",
            "s:1",
        ],
    );
    let digest_b = digest_line(&build_b.success());
    assert_eq!(
        digest_a, digest_b,
        "same files, different mtimes/modes/owners/paths/umask"
    );

    // `build .` from inside the folder names the skill after the folder and agrees too.
    let mut build_dot = sandbox.bare(&["--store", "../../store-c", "build", "."]);
    build_dot.current_dir(&a);
    assert_eq!(digest_line(&run(build_dot).success()), digest_a, "build .");

    // The index blob (which names everything else by digest) is byte-for-byte equal.
    let (_, hex) = digest_a.split_once(':').unwrap();
    let in_a = fs::read(sandbox.join("a/store-a/blobs/sha256").join(hex)).unwrap();
    let in_b = fs::read(store_b.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        in_a, in_b,
        "index blob {digest_a} differs between the stores"
    );
}

#[test]
fn content_and_the_executable_bit_do_change_the_digest() {
    // The other side of the determinism test: it would pass trivially if the digest ignored
    // the files.
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let first = sandbox.build(&dir, "s:1");

    fs::set_permissions(
        dir.join("scripts/helper.py"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let executable = sandbox.build(&dir, "s:2");
    assert_ne!(
        first, executable,
        "making a file executable changes the image"
    );

    fs::set_permissions(
        dir.join("scripts/helper.py"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(sandbox.build(&dir, "s:3"), first, "and back again");

    fs::write(dir.join("assets/empty.txt"), "x").unwrap();
    assert_ne!(sandbox.build(&dir, "s:4"), first, "one byte more");
}

/// Entry mtimes of a layer blob as GNU tar shows them (UTC).
fn layer_mtimes(blob: &Path) -> Vec<String> {
    let mut tar = tool("tar", "tar");
    tar.args(["-tvz", "--full-time", "-f"]).arg(blob);
    let run = run(tar).success();
    run.stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            format!("{} {}", fields[3], fields[4])
        })
        .collect()
}

fn config_created(sandbox: &Sandbox, reference: &str) -> serde_json::Value {
    let inspected = sandbox.inspect(reference);
    let config = sandbox.blob(inspected["config"]["digest"].as_str().unwrap());
    let config: serde_json::Value = serde_json::from_slice(&fs::read(config).unwrap()).unwrap();
    config["created"].clone()
}

#[test]
fn source_date_epoch_changes_the_digest_and_sets_created() {
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let build = |tag: &str, epoch: Option<&str>| {
        let mut command = sandbox.skillport(&["build", path_str(&dir), "-t", tag]);
        if let Some(epoch) = epoch {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        digest_line(&run(command).success())
    };

    let plain = build("s:plain", None);
    let inspected = sandbox.inspect("s:plain");
    assert!(
        inspected["annotations"]
            .get("org.opencontainers.image.created")
            .is_none(),
        "no SOURCE_DATE_EPOCH, no created annotation: {inspected}"
    );
    assert!(config_created(&sandbox, "s:plain").is_null());
    let blob = sandbox.blob(inspected["layer"]["digest"].as_str().unwrap());
    assert!(
        layer_mtimes(&blob)
            .iter()
            .all(|t| t == "1970-01-01 00:00:00"),
        "mtime 0 by default: {:?}",
        layer_mtimes(&blob)
    );

    let dated = build("s:dated", Some("1700000000"));
    assert_ne!(dated, plain, "SOURCE_DATE_EPOCH changes the digest");
    let inspected = sandbox.inspect("s:dated");
    assert_eq!(
        inspected["annotations"]["org.opencontainers.image.created"], "2023-11-14T22:13:20Z",
        "{inspected}"
    );
    assert_eq!(config_created(&sandbox, "s:dated"), "2023-11-14T22:13:20Z");
    let blob = sandbox.blob(inspected["layer"]["digest"].as_str().unwrap());
    let mtimes = layer_mtimes(&blob);
    assert!(
        mtimes.iter().all(|t| t == "2023-11-14 22:13:20"),
        "entry mtimes follow SOURCE_DATE_EPOCH: {mtimes:?}"
    );

    // Reproducible with the same epoch, even after the files' mtimes change.
    touch_all(&dir, "2011-11-11 11:11:11");
    assert_eq!(build("s:again", Some("1700000000")), dated);
    assert_eq!(build("s:plain-again", None), plain);
    assert_ne!(build("s:later", Some("1700000001")), dated, "another epoch");
    // An empty SOURCE_DATE_EPOCH counts as unset.
    assert_eq!(build("s:empty", Some("")), plain);
}

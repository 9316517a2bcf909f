// Skills for local agents: `install`, `list`, `outdated`, `update`, `verify` and `uninstall`
// against a real TLS + auth registry, a git daemon, local folders and the local store, as a
// user runs them in a project folder (or with --global and a fake HOME).

mod common;

#[path = "../../skillport-fetch/tests/git/fixture.rs"]
#[allow(dead_code)]
mod git_fixture;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, Sandbox, assert_same_tree, path_str, run, tree, write_minimal_skill};
use serde_json::Value;
use skillport_testkit::Registry;

/// `skillport ARGS` in `project` (the sandbox's HOME and store).
fn in_project(sandbox: &Sandbox, project: &Path, args: &[&str]) -> Command {
    fs::create_dir_all(project).unwrap();
    let mut command = sandbox.skillport(args);
    command.current_dir(project);
    command
}

fn ok(sandbox: &Sandbox, project: &Path, args: &[&str]) -> Run {
    run(in_project(sandbox, project, args)).success()
}

fn fails(sandbox: &Sandbox, project: &Path, args: &[&str]) -> Run {
    run(in_project(sandbox, project, args)).failure()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// A skill `name` whose SKILL.md body says `text`, built and pushed as `remote`.
fn push_skill(sandbox: &Sandbox, flags: &[&str], name: &str, text: &str, remote: &str) -> PathBuf {
    let dir = write_minimal_skill(&sandbox.join("src"), name);
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: Does {name} things. Use when testing.\n---\n{text}\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(
        dir.join("scripts/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let local = format!("{name}:build");
    sandbox.build(&dir, &local);
    let mut args = flags.to_vec();
    args.extend(["push", &local, remote]);
    sandbox.ok(&args);
    dir
}

/// Installs from a TLS + auth registry into two targets; another machine given only the
/// manifest and lock gets byte-identical folders with --frozen; --frozen fails once the
/// manifest says something else; with the image in the store, a removed folder comes back
/// with the registry gone.
#[test]
fn install_reproduces_the_same_folders_from_the_lock() {
    let registry = Registry::tls_basic_auth();
    let a = Sandbox::new();
    let auth = registry.docker_config(&a.join("auth"));
    let ca = path_str(registry.ca_file().unwrap()).to_owned();
    let flags = ["--ca-file", ca.as_str(), "--authfile", path_str(&auth)];
    let remote = format!("{}/skills/pdf-tools:1.0.0", registry.host());
    let source = push_skill(&a, &flags, "pdf-tools", "Version one.", &remote);

    let project_a = a.join("project");
    let mut args = vec!["install"];
    args.extend(flags);
    args.extend([remote.as_str(), "--target", "claude", "--target", "agents"]);
    let first = ok(&a, &project_a, &args);
    assert!(
        first.stderr.contains("installed  pdf-tools sha256:"),
        "{first}"
    );
    for folder in [".claude/skills/pdf-tools", ".agents/skills/pdf-tools"] {
        assert_same_tree(&tree(&project_a.join(folder)), &tree(&source));
    }
    let lock = read_json(&project_a.join("skillport.lock.json"));
    let locked = &lock["skills"]["pdf-tools"];
    assert_eq!(locked["image"], remote.as_str());
    assert!(locked["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        locked["installed"],
        serde_json::json!([".agents/skills/pdf-tools", ".claude/skills/pdf-tools"])
    );
    assert!(
        locked["files"]["scripts/run.sh"]
            .as_str()
            .unwrap()
            .starts_with("exec sha256:")
    );

    // Machine B: only the two files.
    let b = Sandbox::new();
    let project_b = b.join("project");
    fs::create_dir_all(&project_b).unwrap();
    for file in ["skillport.json", "skillport.lock.json"] {
        fs::copy(project_a.join(file), project_b.join(file)).unwrap();
    }
    let b_auth = registry.docker_config(&b.join("auth"));
    let b_flags = ["--ca-file", ca.as_str(), "--authfile", path_str(&b_auth)];
    let mut args = vec!["install", "--frozen"];
    args.extend(b_flags);
    ok(&b, &project_b, &args);
    for folder in [".claude/skills/pdf-tools", ".agents/skills/pdf-tools"] {
        assert_same_tree(
            &tree(&project_b.join(folder)),
            &tree(&project_a.join(folder)),
        );
    }
    assert_eq!(
        fs::read(project_b.join("skillport.lock.json")).unwrap(),
        fs::read(project_a.join("skillport.lock.json")).unwrap(),
        "the same inputs give the same lock, byte for byte"
    );
    // A second run finds everything in place.
    let again = ok(&b, &project_b, &args);
    assert!(again.stderr.contains("up to date pdf-tools"), "{again}");

    // The manifest now asks for another target: --frozen refuses and changes nothing.
    let manifest = project_b.join("skillport.json");
    let edited = fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"claude\"", "\"cursor\"");
    fs::write(&manifest, edited).unwrap();
    let refused = fails(&b, &project_b, &args);
    assert!(
        refused
            .error()
            .contains("the manifest and the lock disagree (--frozen): pdf-tools has other targets"),
        "{refused}"
    );
    assert!(!project_b.join(".cursor").exists());

    // Offline: the registry is gone, the store has the image.
    fs::remove_dir_all(project_a.join(".claude/skills/pdf-tools")).unwrap();
    drop(registry);
    let offline = ok(&a, &project_a, &["install"]);
    assert!(offline.stderr.contains("updated    pdf-tools"), "{offline}");
    assert_same_tree(
        &tree(&project_a.join(".claude/skills/pdf-tools")),
        &tree(&source),
    );
}

/// A tag moved on the registry: `outdated` lists that skill alone, `update` moves it and the
/// lock changes only in its entry.
#[test]
fn a_moved_tag_is_outdated_and_update_moves_only_it() {
    let registry = Registry::plain();
    let sandbox = Sandbox::new();
    let host = registry.host();
    let alpha = format!("{host}/skills/alpha:1");
    let beta = format!("{host}/skills/beta:1");
    push_skill(&sandbox, &[], "alpha", "Alpha one.", &alpha);
    push_skill(&sandbox, &[], "beta", "Beta one.", &beta);
    let project = sandbox.join("project");
    ok(&sandbox, &project, &["install", &alpha, &beta]);
    let before = read_json(&project.join("skillport.lock.json"));
    let none = ok(&sandbox, &project, &["outdated", "--json"]).json();
    assert_eq!(none, serde_json::json!([]));

    fs::remove_dir_all(sandbox.join("src/alpha")).unwrap();
    push_skill(&sandbox, &[], "alpha", "Alpha two.", &alpha);
    let outdated = ok(&sandbox, &project, &["outdated", "--json"]).json();
    assert_eq!(outdated.as_array().unwrap().len(), 1, "{outdated}");
    assert_eq!(outdated[0]["name"], "alpha");
    assert_eq!(outdated[0]["locked"], before["skills"]["alpha"]["digest"]);

    let updated = ok(&sandbox, &project, &["update"]);
    assert!(updated.stderr.contains("updated    alpha"), "{updated}");
    assert!(updated.stderr.contains("up to date beta"), "{updated}");
    let after = read_json(&project.join("skillport.lock.json"));
    assert_eq!(after["skills"]["beta"], before["skills"]["beta"]);
    assert_eq!(after["skills"]["alpha"]["digest"], outdated[0]["latest"]);
    assert_ne!(
        after["skills"]["alpha"]["treeHash"],
        before["skills"]["alpha"]["treeHash"]
    );
    assert!(
        fs::read_to_string(project.join(".agents/skills/alpha/SKILL.md"))
            .unwrap()
            .contains("Alpha two.")
    );
    let listed = ok(&sandbox, &project, &["list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// `--global` with a fake HOME: a local folder is built and installed into ~/.claude/skills,
/// the manifest and lock go to ~/.config/skillport. `verify` names each file edited, added and
/// removed; install then refuses to overwrite the changes until --force.
#[test]
fn verify_names_every_change_and_install_keeps_changed_folders() {
    let sandbox = Sandbox::new();
    let source = write_minimal_skill(&sandbox.join("src"), "my-skill");
    fs::write(source.join("notes.md"), "Notes.\n").unwrap();
    let cwd = sandbox.join("anywhere");
    ok(
        &sandbox,
        &cwd,
        &[
            "install",
            "--global",
            "--target",
            "claude",
            path_str(&source),
        ],
    );
    let home = sandbox.join("home");
    let installed = home.join(".claude/skills/my-skill");
    assert_same_tree(&tree(&installed), &tree(&source));
    let lock = read_json(&home.join(".config/skillport/skillport.lock.json"));
    assert_eq!(
        lock["skills"]["my-skill"]["installed"],
        serde_json::json!(["~/.claude/skills/my-skill"])
    );
    assert!(
        !cwd.join("skillport.json").exists(),
        "--global writes nothing here"
    );
    ok(&sandbox, &cwd, &["verify", "--global"]);

    fs::write(
        installed.join("SKILL.md"),
        "---\nname: my-skill\ndescription: Changed.\n---\n",
    )
    .unwrap();
    fs::write(installed.join("extra.md"), "Extra.\n").unwrap();
    fs::remove_file(installed.join("notes.md")).unwrap();
    let checked = run(in_project(
        &sandbox,
        &cwd,
        &["verify", "--global", "--json"],
    ))
    .failure();
    let changes = &checked.json()[0]["changes"];
    assert_eq!(
        changes,
        &serde_json::json!([
            {"path": "SKILL.md", "change": "edited"},
            {"path": "extra.md", "change": "added"},
            {"path": "notes.md", "change": "removed"},
        ]),
        "{checked}"
    );
    let refused = fails(&sandbox, &cwd, &["install", "--global"]);
    assert!(
        refused
            .error()
            .contains("changed since skillport installed it"),
        "{refused}"
    );
    assert!(
        refused
            .stderr
            .contains("hint: see what changed with `skillport verify`"),
        "{refused}"
    );
    assert!(installed.join("extra.md").exists(), "nothing replaced");
    ok(&sandbox, &cwd, &["install", "--global", "--force"]);
    assert_same_tree(&tree(&installed), &tree(&source));
    ok(&sandbox, &cwd, &["verify", "--global"]);

    let removed = ok(&sandbox, &cwd, &["uninstall", "--global", "my-skill"]);
    assert!(
        removed.stderr.contains("removed ~/.claude/skills/my-skill"),
        "{removed}"
    );
    assert!(!installed.exists());
}

/// A folder the user made is never replaced: install says so, names it and how to adopt it,
/// and leaves everything as it was.
#[test]
fn a_users_own_folder_is_never_overwritten() {
    let sandbox = Sandbox::new();
    let project = sandbox.join("project");
    let mine = project.join(".claude/skills/foo");
    fs::create_dir_all(&mine).unwrap();
    fs::write(mine.join("SKILL.md"), "my own\n").unwrap();
    let source = write_minimal_skill(&sandbox.join("src"), "foo");
    let refused = fails(
        &sandbox,
        &project,
        &["install", "--target", "claude", path_str(&source)],
    );
    assert!(
        refused.error().contains(&format!(
            "{} exists and skillport did not install it",
            mine.display()
        )),
        "{refused}"
    );
    assert!(refused.stderr.contains("--adopt"), "{refused}");
    assert_eq!(
        fs::read_to_string(mine.join("SKILL.md")).unwrap(),
        "my own\n"
    );
    assert!(
        !project.join("skillport.lock.json").exists(),
        "nothing recorded"
    );
    ok(
        &sandbox,
        &project,
        &[
            "install",
            "--adopt",
            "--target",
            "claude",
            path_str(&source),
        ],
    );
    assert_same_tree(&tree(&mine), &tree(&source));
}

/// A git source (`git daemon`): pinned to the commit its tag names, the folder as the commit
/// has it.
#[test]
fn a_git_source_is_pinned_to_its_commit() {
    let fixture = git_fixture::Fixture::new();
    let sandbox = Sandbox::new();
    let project = sandbox.join("project");
    let source = format!("{}//skills/code-review@v2", fixture.git_url());
    let done = ok(&sandbox, &project, &["install", &source]);
    assert!(done.stderr.contains("installed  code-review"), "{done}");
    let lock = read_json(&project.join("skillport.lock.json"));
    assert_eq!(
        lock["skills"]["code-review"]["commit"],
        fixture.commits.second.as_str()
    );
    assert_eq!(lock["skills"]["code-review"]["ref"], "v2");
    assert_eq!(
        fs::read_to_string(project.join(".agents/skills/code-review/SKILL.md")).unwrap(),
        git_fixture::skill_md(2)
    );
    ok(&sandbox, &project, &["verify"]);
}

/// Runs `docs/<schema>` (Draft 2020-12, with manifest.schema.json for its references) over
/// each JSON document; returns whether each is valid.
fn schema_verdicts(schema: &str, documents: &[Value]) -> Vec<bool> {
    let venv = std::env::var_os("SKILLPORT_TEST_VENV").map_or_else(
        || common::workspace_root().join("target/test-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    let script = r#"
import json, sys
import jsonschema
from referencing import Registry, Resource
docs = sys.argv[1]
manifest = json.load(open(docs + "/manifest.schema.json"))
schema = json.load(open(docs + "/" + sys.argv[2]))
registry = Registry().with_resource(manifest["$id"], Resource.from_contents(manifest))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, registry=registry)
for line in sys.stdin:
    print("valid" if validator.is_valid(json.loads(line)) else "invalid")
"#;
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(common::workspace_root().join("docs"))
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "{} does not run ({err}); scripts/test.sh makes the virtualenv",
                python.display()
            )
        });
    let mut input = String::new();
    for doc in documents {
        input.push_str(&doc.to_string());
        input.push('\n');
    }
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the schema check failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line == "valid")
        .collect()
}

/// docs/manifest.schema.json and docs/lock.schema.json accept what install writes (an image,
/// a folder and a git skill) and refuse a source that is two things or a lock entry without
/// its revision.
#[test]
fn the_schemas_accept_what_install_writes() {
    let fixture = git_fixture::Fixture::new();
    let registry = Registry::plain();
    let sandbox = Sandbox::new();
    let image = format!("{}/skills/alpha:1", registry.host());
    push_skill(&sandbox, &[], "alpha", "Alpha.", &image);
    let folder = write_minimal_skill(&sandbox.join("src"), "local-one");
    let git = format!("{}//skills/code-review@main", fixture.git_url());
    let project = sandbox.join("project");
    ok(
        &sandbox,
        &project,
        &[
            "install",
            &image,
            path_str(&folder),
            &git,
            "--target",
            "claude",
        ],
    );
    let manifest = read_json(&project.join("skillport.json"));
    let lock = read_json(&project.join("skillport.lock.json"));
    assert_eq!(lock["skills"].as_object().unwrap().len(), 3, "{lock}");

    let mut two_things = manifest.clone();
    two_things["skills"]["alpha"]["folder"] = Value::from("./alpha");
    let mut bad_target = manifest.clone();
    bad_target["skills"]["alpha"]["targets"] = serde_json::json!(["claude", "claude"]);
    assert_eq!(
        schema_verdicts("manifest.schema.json", &[manifest, two_things, bad_target]),
        [true, false, false]
    );
    let mut no_commit = lock.clone();
    no_commit["skills"]["code-review"]
        .as_object_mut()
        .unwrap()
        .remove("commit");
    let mut bad_file = lock.clone();
    bad_file["skills"]["alpha"]["files"]["SKILL.md"] = Value::from("sha256:nothex");
    assert_eq!(
        schema_verdicts("lock.schema.json", &[lock, no_commit, bad_file]),
        [true, false, false]
    );
}

/// One skill of two cannot be installed (an image with no SKILL.md, pushed by skopeo): the
/// other is installed and locked, the bad one is left out of the manifest and its folder never
/// appears, and the next install finds the good one in place.
#[test]
fn a_failed_skill_leaves_the_others_installed_and_recorded() {
    let registry = Registry::plain();
    let sandbox = Sandbox::new();
    let good = format!("{}/skills/alpha:1", registry.host());
    push_skill(&sandbox, &[], "alpha", "Alpha.", &good);
    let layout = sandbox.join("layout");
    skillport_testkit::write_tiny_image(&layout, "1", b"not a skill\n");
    let bad = format!("{}/skills/no-skill:1", registry.host());
    common::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", layout.display()),
        &format!("docker://{bad}"),
    ])
    .success();
    let project = sandbox.join("project");
    let failed = fails(&sandbox, &project, &["install", &good, &bad]);
    assert!(
        failed.error().contains("skill \"no-skill\"") && failed.error().contains("SKILL.md"),
        "{failed}"
    );
    assert!(project.join(".agents/skills/alpha/SKILL.md").is_file());
    assert!(!project.join(".agents/skills/no-skill").exists());
    let manifest = read_json(&project.join("skillport.json"));
    assert_eq!(
        manifest["skills"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["alpha"],
        "{manifest}"
    );
    let lock = read_json(&project.join("skillport.lock.json"));
    assert!(lock["skills"]["alpha"]["digest"].is_string(), "{lock}");
    let again = ok(&sandbox, &project, &["install"]);
    assert!(again.stderr.contains("up to date alpha"), "{again}");
}

/// An image of the local store (a name without a registry, as `build` names it) installs with
/// no registry at all; rebuilt under the same tag it is outdated, and `update` moves to it. A
/// name the store lacks is refused, saying to build or pull it.
#[test]
fn the_local_store_is_a_source() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "from-store");
    sandbox.build(&dir, "from-store:1.0.0");
    let project = sandbox.join("project");
    ok(
        &sandbox,
        &project,
        &["install", "from-store:1.0.0", "--target", "claude"],
    );
    assert_same_tree(
        &tree(&project.join(".claude/skills/from-store")),
        &tree(&dir),
    );

    fs::write(dir.join("more.md"), "More.\n").unwrap();
    let rebuilt = sandbox.build(&dir, "from-store:1.0.0");
    let outdated = ok(&sandbox, &project, &["outdated", "--json"]).json();
    assert_eq!(outdated[0]["latest"], rebuilt.as_str(), "{outdated}");
    ok(&sandbox, &project, &["update", "from-store"]);
    assert!(project.join(".claude/skills/from-store/more.md").is_file());

    let missing = fails(&sandbox, &project, &["install", "nowhere:1"]);
    assert!(
        missing.error().contains("build or pull it first"),
        "{missing}"
    );
    // In a folder with no manifest, a bare install says what to do and writes nothing.
    let empty = sandbox.join("empty");
    let nothing = fails(&sandbox, &empty, &["install"]);
    assert!(nothing.error().contains("nothing to install"), "{nothing}");
    assert!(
        nothing.stderr.contains("hint: `skillport install SOURCE`"),
        "{nothing}"
    );
    assert!(!empty.join("skillport.json").exists());
}

/// An OCI layout holding one image whose layer has a SKILL.md and an entry `../escape.txt`,
/// written by Python's tarfile (independent of our code), tagged `1`.
fn write_escaping_image(layout: &Path) {
    let script = r#"
import gzip, hashlib, io, json, os, sys, tarfile
layout = sys.argv[1]
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, digest), "wb").write(data)
    return "sha256:" + digest, len(data)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for name, text in [("SKILL.md", b"---\nname: escaping\ndescription: Escapes. Use never.\n---\n"), ("../escape.txt", b"out\n")]:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
layer, layer_size = put(gzip.compress(raw.getvalue(), mtime=0))
diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
config, config_size = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]}).encode()
digest, size = put(manifest)
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(os.path.join(layout, "index.json"), "w"))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(layout)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What export refuses, install refuses: a layer with an entry leaving the folder. Nothing is
/// written in the target, nothing outside it, and nothing is recorded.
#[test]
fn a_hostile_layer_is_refused_and_nothing_is_written() {
    let registry = Registry::plain();
    let sandbox = Sandbox::new();
    let layout = sandbox.join("layout");
    write_escaping_image(&layout);
    let remote = format!("{}/skills/escaping:1", registry.host());
    common::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", layout.display()),
        &format!("docker://{remote}"),
    ])
    .success();
    let project = sandbox.join("project");
    let refused = fails(
        &sandbox,
        &project,
        &["install", &remote, "--target", "claude"],
    );
    assert!(refused.error().contains("skill \"escaping\""), "{refused}");
    let skills = project.join(".claude/skills");
    let left: Vec<_> = fs::read_dir(&skills)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "nothing left in {}: {left:?}",
        skills.display()
    );
    assert!(!project.join(".claude/escape.txt").exists());
    assert!(!project.join(".claude/skills/escape.txt").exists());
    let lock = read_json(&project.join("skillport.lock.json"));
    assert_eq!(lock["skills"], serde_json::json!({}), "{lock}");
}

/// A lock edited to list another folder (`docs`, with its real tree hash) is refused before
/// anything is removed: a lock comes from a repository, and its folders are the ones uninstall
/// deletes.
#[test]
fn a_lock_naming_other_folders_is_refused() {
    let sandbox = Sandbox::new();
    let project = sandbox.join("project");
    let source = write_minimal_skill(&sandbox.join("src"), "victim");
    ok(&sandbox, &project, &["install", path_str(&source)]);
    let docs = project.join("docs");
    fs::create_dir_all(&docs).unwrap();
    fs::write(docs.join("keep.md"), "Keep me.\n").unwrap();
    let lock_path = project.join("skillport.lock.json");
    let mut lock = read_json(&lock_path);
    lock["skills"]["victim"]["installed"] = serde_json::json!(["docs"]);
    fs::write(&lock_path, serde_json::to_vec(&lock).unwrap()).unwrap();
    for args in [&["uninstall", "victim"][..], &["install"], &["verify"]] {
        let refused = fails(&sandbox, &project, args);
        assert!(
            refused
                .error()
                .contains("installed folder \"docs\" is not TARGET/victim"),
            "{args:?}: {refused}"
        );
    }
    assert_eq!(
        fs::read_to_string(docs.join("keep.md")).unwrap(),
        "Keep me.\n"
    );
}

/// One of a skill's two targets cannot be written (a file stands where its folder would be):
/// the skill changes in neither, and the lock and manifest stay as they were.
#[test]
fn a_skill_changes_in_all_its_targets_or_none() {
    let sandbox = Sandbox::new();
    let project = sandbox.join("project");
    let source = write_minimal_skill(&sandbox.join("src"), "both");
    ok(&sandbox, &project, &["install", path_str(&source)]);
    let lock_before = fs::read(project.join("skillport.lock.json")).unwrap();
    let manifest_before = fs::read(project.join("skillport.json")).unwrap();
    fs::write(project.join("blocker"), "a file, not a folder\n").unwrap();
    fs::write(
        source.join("SKILL.md"),
        fs::read_to_string(source.join("SKILL.md")).unwrap() + "More.\n",
    )
    .unwrap();
    let failed = fails(
        &sandbox,
        &project,
        &[
            "install",
            path_str(&source),
            "--target",
            "agents",
            "--target",
            "./blocker",
        ],
    );
    assert!(failed.error().contains("skill \"both\""), "{failed}");
    assert!(
        !fs::read_to_string(project.join(".agents/skills/both/SKILL.md"))
            .unwrap()
            .contains("More."),
        "the first target kept its content"
    );
    assert_eq!(
        fs::read(project.join("skillport.lock.json")).unwrap(),
        lock_before
    );
    assert_eq!(
        fs::read(project.join("skillport.json")).unwrap(),
        manifest_before
    );
    ok(&sandbox, &project, &["verify"]);
}

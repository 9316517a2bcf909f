// The CLI's commands, one behaviour per test: JSON output of `images`, `inspect` and
// `build`; `tag` and `rm` with garbage collection; `export` round trips; `validate` exit
// codes; `init`; `build --card`; and where the store lives by default.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{
    PRIVATE_MODES, SAMPLE_ENTRIES, Sandbox, USUAL_MODES, assert_blobs_match_their_names,
    assert_same_tree, folder_names, path_str, run, skopeo, tree, write_minimal_skill,
    write_sample_skill,
};
use serde_json::{Value, json};

fn blob_names(store: &Path) -> BTreeSet<String> {
    folder_names(&store.join("blobs/sha256"))
        .into_iter()
        .map(|hex| format!("sha256:{hex}"))
        .collect()
}

#[test]
fn images_json_lists_every_name_with_its_fields() {
    let sandbox = Sandbox::new();
    let empty = sandbox.ok(&["images", "--json"]);
    assert_eq!(empty.json(), json!([]), "an empty store lists nothing");
    let human = sandbox.ok(&["images"]);
    assert!(
        human.stdout.is_empty(),
        "no data, nothing on stdout\n{human}"
    );

    let sample = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let minimal = write_minimal_skill(&sandbox.join("src"), "tiny");
    let sample_digest = sandbox.build(&sample, "my-skill:1.2.0");
    let tiny_digest = sandbox.build(&minimal, "registry.example.com/team/tiny:0.1.0");
    let layer_size = sandbox.inspect("my-skill:1.2.0")["layer"]["size"].clone();

    let images = sandbox.ok(&["images", "--json"]).json();
    let images = images.as_array().expect("a JSON array");
    assert_eq!(images.len(), 2, "{images:?}");
    let sample_row = &images[0];
    assert_eq!(sample_row["reference"], "my-skill:1.2.0");
    assert_eq!(sample_row["name"], "my-skill");
    assert_eq!(sample_row["tag"], "1.2.0");
    assert_eq!(sample_row["skill"], "my-skill");
    assert_eq!(sample_row["digest"], sample_digest.as_str());
    assert_eq!(sample_row["size"], layer_size);
    assert!(
        sample_row["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Sample skill my-skill")),
        "{sample_row}"
    );
    let tiny_row = &images[1];
    assert_eq!(
        tiny_row["reference"],
        "registry.example.com/team/tiny:0.1.0"
    );
    assert_eq!(tiny_row["name"], "registry.example.com/team/tiny");
    assert_eq!(tiny_row["tag"], "0.1.0");
    assert_eq!(tiny_row["digest"], tiny_digest.as_str());

    let table = sandbox.ok(&["images"]);
    let header = table.stdout.lines().next().unwrap_or_default();
    for column in ["NAME", "TAG", "DIGEST", "SIZE", "DESCRIPTION"] {
        assert!(header.contains(column), "table header\n{table}");
    }
    assert_eq!(
        table.stdout.lines().count(),
        3,
        "header and two rows\n{table}"
    );
}

#[test]
fn inspect_json_describes_the_image() {
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let digest = sandbox.build(&dir, "my-skill:1.2.0");
    let inspected = sandbox.inspect("my-skill:1.2.0");

    assert_eq!(inspected["reference"], "my-skill:1.2.0");
    assert_eq!(inspected["digest"], digest.as_str());
    assert_eq!(
        inspected["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        inspected["platforms"],
        json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(
        inspected["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        inspected["layer"]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_size = fs::metadata(sandbox.blob(inspected["layer"]["digest"].as_str().unwrap()))
        .unwrap()
        .len();
    assert_eq!(
        inspected["layer"]["size"], layer_size,
        "layer size is the blob's"
    );
    let manifest_size =
        fs::metadata(sandbox.blob(inspected["manifest"]["digest"].as_str().unwrap()))
            .unwrap()
            .len();
    assert_eq!(inspected["manifest"]["size"], manifest_size);

    let annotations = &inspected["annotations"];
    for (key, value) in [
        ("io.agentskills.skill.name", "my-skill"),
        ("org.opencontainers.image.title", "my-skill"),
        ("org.opencontainers.image.version", "1.2.0"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
        ("org.opencontainers.image.authors", "Test Author"),
    ] {
        assert_eq!(annotations[key], value, "annotation {key}: {annotations}");
    }
    assert!(
        annotations["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Sample skill")),
        "{annotations}"
    );

    let files: Vec<(String, String)> = inspected["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = SAMPLE_ENTRIES
        .iter()
        .map(|path| {
            let kind = match *path {
                "alias.md" => "symlink",
                "assets" | "references" | "references/empty" | "scripts" => "dir",
                _ => "file",
            };
            ((*path).to_owned(), kind.to_owned())
        })
        .collect();
    assert_eq!(files, expected);
    let data = inspected["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "assets/data.bin")
        .unwrap();
    assert_eq!(data["size"], 3000);

    // The same image by digest, and the human form names the same things.
    let by_digest = sandbox.inspect(&format!("my-skill@{digest}"));
    assert_eq!(by_digest["digest"], inspected["digest"]);
    assert_eq!(by_digest["files"], inspected["files"]);
    let human = sandbox.ok(&["inspect", "my-skill:1.2.0"]);
    for text in [
        digest.as_str(),
        "linux/amd64, linux/arm64",
        "scripts/run.sh",
    ] {
        assert!(
            human.stdout.contains(text),
            "human inspect shows {text}\n{human}"
        );
    }
}

#[test]
fn build_json_agrees_with_plain_build_and_defaults_to_latest() {
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let plain = sandbox.ok(&["build", path_str(&dir)]);
    assert!(
        plain.stderr.contains("tagged my-skill:latest"),
        "no -t: <name>:latest\n{plain}"
    );
    let digest = common::digest_line(&plain);
    let built = sandbox
        .ok(&["build", path_str(&dir), "--json", "-t", "a:1", "-t", "b:2"])
        .json();
    assert_eq!(built["digest"], digest.as_str());
    assert_eq!(built["names"], json!(["a:1", "b:2"]));
    assert_eq!(built["layer"]["files"], 6, "regular files in the layer");
    assert_eq!(
        built["annotations"]["io.agentskills.skill.name"],
        "my-skill"
    );
    let images = sandbox.ok(&["images", "--json"]).json();
    let references: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references, ["a:1", "b:2", "my-skill:latest"]);
}

#[test]
fn tag_then_rm_deletes_only_blobs_nothing_uses() {
    let sandbox = Sandbox::new();
    let one = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let other = write_minimal_skill(&sandbox.join("src"), "other");
    let digest = sandbox.build(&one, "my-skill:1");
    let mine = blob_names(&sandbox.store());
    assert_eq!(
        mine.len(),
        6,
        "layer, 2 configs, 2 manifests, index: {mine:?}"
    );
    sandbox.build(&other, "other:1");
    let all = blob_names(&sandbox.store());
    let others: BTreeSet<String> = all.difference(&mine).cloned().collect();

    let tagged = sandbox.ok(&["tag", "my-skill:1", "my-skill:stable"]);
    assert_eq!(
        tagged.stdout.trim(),
        digest,
        "tag prints the digest\n{tagged}"
    );
    assert_eq!(blob_names(&sandbox.store()), all, "tagging writes no blob");

    let removed = sandbox.ok(&["rm", "my-skill:1"]);
    assert!(
        removed.stdout.contains("deleted 0 unused blobs"),
        "every blob is still used by my-skill:stable\n{removed}"
    );
    assert_eq!(blob_names(&sandbox.store()), all);
    let inspected = sandbox.inspect("my-skill:stable");
    assert_eq!(inspected["digest"], digest.as_str());
    sandbox.run(&["inspect", "my-skill:1"]).failure();
    let out = sandbox.join("exported");
    sandbox.ok(&["export", "my-skill:stable", path_str(&out)]);

    let removed = sandbox.ok(&["rmi", "my-skill:stable"]);
    assert!(
        removed.stdout.contains("deleted 6 unused blobs"),
        "the last name goes, and its blobs with it\n{removed}"
    );
    assert_eq!(
        blob_names(&sandbox.store()),
        others,
        "only the other image's blobs remain"
    );
    sandbox.inspect("other:1");
    assert_blobs_match_their_names(&sandbox.store());
    let run = skopeo(&[
        "inspect",
        &format!("oci:{}:other:1", sandbox.store().display()),
    ]);
    run.success();

    sandbox.ok(&["rm", "other:1"]);
    assert!(
        blob_names(&sandbox.store()).is_empty(),
        "an empty store again"
    );
    assert_eq!(sandbox.ok(&["images", "--json"]).json(), json!([]));
}

#[test]
fn export_round_trips_the_files_with_normalised_modes() {
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", PRIVATE_MODES);
    fs::write(dir.join(".hidden"), "left out\n").unwrap();
    let digest = sandbox.build(&dir, "my-skill:1");
    fs::remove_file(dir.join(".hidden")).unwrap();

    let out = sandbox.join("exported");
    let run = sandbox.ok(&["export", "my-skill:1", path_str(&out)]);
    // The report on stderr; on stdout only the digest, as an export from a registry.
    assert_eq!(run.stdout.trim_end(), digest, "{run}");
    assert!(run.stderr.contains("exported my-skill:1 ("), "{run}");
    assert_same_tree(&tree(&out), &tree(&dir));
    for (path, mode) in [
        ("", 0o755),
        ("SKILL.md", 0o644),
        ("scripts", 0o755),
        ("scripts/run.sh", 0o755),
        ("references/empty", 0o755),
    ] {
        let found = fs::metadata(out.join(path)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(found, mode, "mode of exported {path:?}: {found:o}");
    }

    // An existing empty folder is fine too.
    let empty = sandbox.join("empty");
    fs::create_dir(&empty).unwrap();
    sandbox.ok(&["export", "my-skill:1", path_str(&empty)]);
    assert_same_tree(&tree(&empty), &tree(&dir));
}

// Pins a bug: `skillport export REF .agents/skills/NAME` (the CLI's own example) fails in a
// project that has no `.agents/skills` yet, because `skillport_oci::export`
// (crates/skillport-oci/src/read.rs) stages the unpack in the destination's parent without
// creating it: "creating a temporary folder in: No such file or directory".
#[test]
fn export_creates_missing_parent_folders() {
    let sandbox = Sandbox::new();
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    sandbox.build(&dir, "my-skill:1");
    let out = sandbox.join("project/.agents/skills/my-skill");
    sandbox.ok(&["export", "my-skill:1", path_str(&out)]);
    assert_same_tree(&tree(&out), &tree(&dir));
}

#[test]
fn validate_exit_codes() {
    let sandbox = Sandbox::new();
    let good = write_sample_skill(&sandbox.join("src"), "my-skill", USUAL_MODES);
    let mismatch = write_minimal_skill(&sandbox.join("src"), "folder");
    fs::write(
        mismatch.join("SKILL.md"),
        "---\nname: not-the-folder\ndescription: Mismatched.\n---\nbody\n",
    )
    .unwrap();
    let broken = write_minimal_skill(&sandbox.join("src"), "broken");
    fs::write(broken.join("SKILL.md"), "no frontmatter at all\n").unwrap();
    let leaky = write_minimal_skill(&sandbox.join("src"), "leaky");
    symlink("/etc/passwd", leaky.join("passwd")).unwrap();

    let run = sandbox.ok(&["validate", path_str(&good)]);
    assert!(run.stdout.contains("valid"), "{run}");

    let run = sandbox.run(&["validate", path_str(&mismatch)]).failure();
    assert!(
        run.stdout.contains("error") && run.stdout.contains("not-the-folder"),
        "the problem is printed\n{run}"
    );

    let run = sandbox.ok(&["validate", "--lenient", path_str(&mismatch)]);
    assert!(
        run.stdout.contains("warning") && run.stdout.contains("valid, 1 warning\n"),
        "--lenient turns the violation into a warning\n{run}"
    );

    // Lenient does not excuse what cannot be loaded or packed at all.
    sandbox
        .run(&["validate", "--lenient", path_str(&broken)])
        .failure();
    let run = sandbox
        .run(&["validate", "--lenient", path_str(&leaky)])
        .failure();
    assert!(run.stdout.contains("/etc/passwd"), "{run}");

    // Several folders: one bad one fails the run, and each is reported.
    let run = sandbox
        .run(&["validate", path_str(&good), path_str(&mismatch)])
        .failure();
    assert!(
        run.stdout.contains("my-skill: valid") && run.stdout.contains("folder: invalid, 1 error\n"),
        "one error, not \"1 error(s)\"\n{run}"
    );
    assert!(
        run.stdout.ends_with("2 folders: 1 valid, 1 invalid\n"),
        "a total for several folders\n{run}"
    );
    let run = sandbox
        .run(&["validate", "--json", path_str(&good), path_str(&mismatch)])
        .failure();
    let results = run.json();
    assert_eq!(results[0]["valid"], true, "{results}");
    assert_eq!(results[0]["name"], "my-skill", "{results}");
    assert_eq!(results[1]["valid"], false, "{results}");
    assert_eq!(
        results[1]["name"], "not-the-folder",
        "an invalid skill's name, as SKILL.md gives it\n{results}"
    );
    assert_eq!(
        results[1]["diagnostics"][0]["severity"], "error",
        "{results}"
    );
    assert!(
        results[1]["diagnostics"][0]["line"].is_number(),
        "{results}"
    );

    let missing = sandbox.join("src/does-not-exist");
    sandbox.run(&["validate", path_str(&missing)]).failure();
}

/// `validate` and `build` without a folder take the current one, as `docker build .` does.
#[test]
fn validate_and_build_default_to_the_current_folder() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "here");
    let mut validate = sandbox.bare(&["validate"]);
    validate.current_dir(&dir);
    let validated = run(validate).success();
    assert!(validated.stdout.contains(".: valid"), "{validated}");
    let mut build = sandbox.bare(&["--store", path_str(&sandbox.store()), "build"]);
    build.current_dir(&dir);
    let output = run(build).success();
    assert!(output.stderr.contains("tagged here:latest"), "{output}");
    // Elsewhere, the current folder is no skill: said, not a usage error.
    let elsewhere = sandbox.run(&["validate"]).failure();
    assert!(elsewhere.stdout.contains("no SKILL.md in ."), "{elsewhere}");
}

#[test]
fn init_makes_a_skill_that_validates_and_builds() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.join("src")).unwrap();
    let run = sandbox.ok(&[
        "init",
        "fresh-skill",
        "--dir",
        path_str(&sandbox.join("src")),
    ]);
    let dir = sandbox.join("src/fresh-skill");
    assert!(run.stdout.contains("SKILL.md"), "{run}");
    assert_eq!(folder_names(&dir), ["SKILL.md"]);
    sandbox.ok(&["validate", path_str(&dir)]);
    sandbox.build(&dir, "fresh-skill:0.1.0");

    sandbox.ok(&[
        "init",
        "carded",
        "--card",
        "--dir",
        path_str(&sandbox.join("src")),
    ]);
    let carded = sandbox.join("src/carded");
    assert_eq!(folder_names(&carded), ["SKILL.md", "skill.yaml"]);
    sandbox.ok(&["validate", path_str(&carded)]);
}

#[test]
fn init_refuses_an_existing_folder() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("taken");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("SKILL.md"), "mine\n").unwrap();
    let run = sandbox.run(&["init", "taken"]).failure();
    assert!(run.error().contains("taken"), "{run}");
    assert_eq!(fs::read_to_string(dir.join("SKILL.md")).unwrap(), "mine\n");
    assert_eq!(folder_names(&dir), ["SKILL.md"]);

    let empty = sandbox.join("empty-one");
    fs::create_dir(&empty).unwrap();
    sandbox.run(&["init", "empty-one"]).failure();
    assert!(
        folder_names(&empty).is_empty(),
        "an existing folder is never reused"
    );
}

#[test]
fn init_refuses_an_invalid_name() {
    let sandbox = Sandbox::new();
    let too_long = "a".repeat(65);
    for name in [
        "Bad_Name",
        "trailing-",
        "double--hyphen",
        "has space",
        &too_long,
    ] {
        let run = sandbox.run(&["init", name]).failure();
        assert!(run.error().contains("name"), "{run}");
        assert!(
            !sandbox.join(name).exists(),
            "nothing created for invalid name {name:?}"
        );
    }
    // `-x` would be read as a flag; `--` makes it a name, which is then refused.
    let run = sandbox.run(&["init", "--", "-leading"]).failure();
    assert!(run.error().contains("name"), "{run}");
    assert!(!sandbox.join("-leading").exists());
}

#[test]
fn build_card_matches_init_card() {
    // A SkillCard generated at build time is the one `init --card` writes.
    let with_card = Sandbox::new();
    fs::create_dir(with_card.join("src")).unwrap();
    with_card.ok(&["init", "carded", "--card", "--dir", "src"]);
    let digest_a = with_card.build(&with_card.join("src/carded"), "carded:0.1.0");
    let annotations_a = with_card.inspect("carded:0.1.0")["annotations"].clone();

    let generated = Sandbox::new();
    fs::create_dir(generated.join("src")).unwrap();
    generated.ok(&["init", "carded", "--dir", "src"]);
    let run = generated.ok(&[
        "build",
        path_str(&generated.join("src/carded")),
        "--card",
        "-t",
        "carded:0.1.0",
    ]);
    assert_eq!(common::digest_line(&run), digest_a);
    let inspected = generated.inspect("carded:0.1.0");
    assert_eq!(inspected["annotations"], annotations_a);
    assert_eq!(inspected["annotations"]["io.skillimage.status"], "draft");
    assert!(
        inspected["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "skill.yaml"),
        "{inspected}"
    );
    assert_eq!(
        folder_names(&generated.join("src/carded")),
        ["SKILL.md"],
        "build --card does not write into the skill folder"
    );
}

/// `build --card` of a skill that declares no version takes a SemVer tag's, and without one
/// refuses rather than invent 0.1.0 (the image would show a version the skill never had).
#[test]
fn build_card_never_invents_a_version() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "plain");
    let refused = sandbox
        .run(&["build", path_str(&dir), "--card", "-t", "plain:latest"])
        .failure();
    assert!(
        refused.error().contains("--card needs a version"),
        "{refused}"
    );
    assert!(sandbox.run(&["inspect", "plain:latest"]).status.code() != Some(0));
    sandbox.ok(&["build", path_str(&dir), "--card", "-t", "plain:2.1.0"]);
    let inspected = sandbox.inspect("plain:2.1.0");
    let card = inspected["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, value)| value.as_str() == Some("0.1.0"))
        .count();
    assert_eq!(card, 0, "no annotation says 0.1.0: {inspected}");
    assert!(
        inspected["annotations"]
            .as_object()
            .unwrap()
            .values()
            .any(|value| value == "2.1.0"),
        "the card's version is the tag's: {inspected}"
    );
}

#[test]
fn the_store_defaults_to_skillport_store_then_xdg_data_home_then_home() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "placed");

    let mut command = sandbox.bare(&["build", path_str(&dir)]);
    command.env("SKILLPORT_STORE", sandbox.join("from-env"));
    run(command).success();
    assert!(sandbox.join("from-env/oci-layout").is_file());

    let mut command = sandbox.bare(&["build", path_str(&dir)]);
    command.env("XDG_DATA_HOME", sandbox.join("xdg"));
    run(command).success();
    assert!(sandbox.join("xdg/skillport/store/oci-layout").is_file());

    run(sandbox.bare(&["build", path_str(&dir)])).success();
    assert!(
        sandbox
            .join("home/.local/share/skillport/store/oci-layout")
            .is_file()
    );

    let listed: Value = run(sandbox.bare(&["images", "--json"])).success().json();
    assert_eq!(listed[0]["reference"], "placed:latest");
}

/// A reader that went away before anything was written (`skillport images | head -0`): each
/// command that prints ends quietly with success, as Unix tools do, instead of panicking
/// ("failed printing to stdout: Broken pipe", exit 101).
#[test]
fn a_closed_pipe_on_stdout_ends_quietly() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "my-skill");
    sandbox.build(&dir, "my-skill:1");
    for args in [
        &["images"][..],
        &["images", "--json"],
        &["inspect", "my-skill:1"],
        &["inspect", "--json", "my-skill:1"],
        &["validate", path_str(&dir)],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = sandbox
            .skillport(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("panicked"),
            "{args:?}: {:?}, stderr: {stderr}",
            output.status
        );
    }
}

/// `build --lenient` without `-t` of a skill whose name is no image name (`Ahrefs Automation`,
/// from a public collection): named after its folder, or told to pass `-t`; the image and its
/// card record the folder's name, not the bad one.
#[test]
fn a_lenient_build_without_a_tag_is_named_after_the_folder() {
    let sandbox = Sandbox::new();
    for folder in ["ahrefs-automation", "Ahrefs Automation"] {
        let dir = sandbox.join("src").join(folder);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("SKILL.md"),
            "---\nname: Ahrefs Automation\ndescription: Automates Ahrefs.\n---\nbody\n",
        )
        .unwrap();
    }
    let named = sandbox.ok(&[
        "build",
        "--lenient",
        path_str(&sandbox.join("src/ahrefs-automation")),
    ]);
    assert!(
        named.stderr.contains("tagged ahrefs-automation:latest"),
        "{named}"
    );
    // The image records a name that keeps the rules; the title keeps the skill's own words, and
    // SKILL.md is packed as written.
    assert!(
        named.stderr.contains(
            "warning: the image records the skill's name as \"ahrefs-automation\", not \
             \"Ahrefs Automation\""
        ),
        "{named}"
    );
    let annotations = &sandbox.inspect("ahrefs-automation:latest")["annotations"];
    assert_eq!(
        annotations["io.agentskills.skill.name"],
        "ahrefs-automation"
    );
    sandbox.ok(&[
        "build",
        "--lenient",
        "--card",
        "-t",
        "ahrefs-automation:1.0.0",
        path_str(&sandbox.join("src/ahrefs-automation")),
    ]);
    let annotations = &sandbox.inspect("ahrefs-automation:1.0.0")["annotations"];
    assert_eq!(
        annotations["io.agentskills.skill.name"],
        "ahrefs-automation"
    );
    assert_eq!(
        annotations["org.opencontainers.image.title"],
        "Ahrefs Automation"
    );
    let out = sandbox.join("carded");
    sandbox.ok(&["export", "ahrefs-automation:1.0.0", path_str(&out)]);
    let card = fs::read_to_string(out.join("skill.yaml")).unwrap();
    assert!(
        card.contains("  name: ahrefs-automation\n  display-name: Ahrefs Automation\n"),
        "{card}"
    );
    assert!(
        fs::read_to_string(out.join("SKILL.md"))
            .unwrap()
            .contains("name: Ahrefs Automation")
    );
    let refused = sandbox
        .run(&[
            "build",
            "--lenient",
            path_str(&sandbox.join("src/Ahrefs Automation")),
        ])
        .failure();
    assert!(
        refused.stderr.contains("-t NAME:TAG")
            && !refused.stderr.contains("hint: write references"),
        "{refused}"
    );
}

/// `images -q`: the references alone, one a line, for scripts (`xargs skillport rm`); `rm`
/// says the name it removed as the store held it.
#[test]
fn images_quiet_lists_references_and_rm_names_what_it_removed() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "quiet");
    sandbox.build(&dir, "quiet:1");
    sandbox.ok(&["tag", "quiet:1", "quiet:latest"]);
    let listed = sandbox.ok(&["images", "-q"]);
    assert_eq!(listed.stdout, "quiet:1\nquiet:latest\n", "{listed}");
    let removed = sandbox.ok(&["rm", "quiet"]);
    assert!(
        removed
            .stdout
            .starts_with("removed quiet:latest (deleted 0 unused blobs"),
        "{removed}"
    );
}

/// A version tag other than the skill's own `metadata.version` is warned about, not refused.
#[test]
fn a_tag_that_is_not_the_skills_version_is_warned_about() {
    let sandbox = Sandbox::new();
    let dir = write_minimal_skill(&sandbox.join("src"), "versioned");
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: versioned\ndescription: Has a version.\nmetadata:\n  version: 1.2.0\n---\nbody\n",
    )
    .unwrap();
    let slipped = sandbox.ok(&["build", path_str(&dir), "-t", "versioned:1.3.0"]);
    assert!(
        slipped
            .stderr
            .contains("warning: tag versioned:1.3.0 is not the skill's own version 1.2.0"),
        "{slipped}"
    );
    let matching = sandbox.ok(&[
        "build",
        path_str(&dir),
        "-t",
        "versioned:1.2.0",
        "-t",
        "versioned:latest",
    ]);
    assert!(!matching.stderr.contains("warning"), "{matching}");
}

/// `completions` for bash loads (`bash -n`, then sourced, it registers `skillport`); zsh and
/// fish are syntax-checked where those shells are installed; each names the subcommands.
#[test]
fn completions_load_in_their_shells_and_version_prints_ours() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = sandbox.ok(&["completions", shell]).stdout;
        for command in ["build", "inspect", "completions"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
        let file = sandbox.join(&format!("skillport.{shell}"));
        fs::write(&file, &script).unwrap();
        let check = match shell {
            "bash" => format!(
                "bash -n {0} && source {0} && complete -p skillport",
                file.display()
            ),
            other => format!(
                "command -v {other} >/dev/null || exit 0; {other} -n {}",
                file.display()
            ),
        };
        let output = std::process::Command::new("bash")
            .args(["-c", &check])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if shell == "bash" {
            assert!(String::from_utf8_lossy(&output.stdout).contains("skillport"));
        }
    }
    let version = sandbox.ok(&["version"]);
    assert_eq!(
        version.stdout,
        format!("skillport {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `tag`, `rm` and `export` take `--json` for scripts: what was named, written or deleted.
#[test]
fn tag_rm_and_export_print_json() {
    let sandbox = Sandbox::new();
    let dir = common::write_minimal_skill(sandbox.path(), "scripted");
    let digest = sandbox.build(&dir, "scripted:1");
    let tagged = sandbox
        .ok(&["tag", "scripted:1", "scripted:stable", "--json"])
        .json();
    assert_eq!(
        tagged,
        json!({"reference": "scripted:stable", "digest": digest})
    );
    let dest = sandbox.join("out");
    let exported = sandbox
        .ok(&["export", "scripted:stable", path_str(&dest), "--json"])
        .json();
    assert_eq!(exported["reference"], "scripted:stable");
    assert_eq!(exported["digest"], digest.as_str());
    assert_eq!(exported["files"], 1);
    assert_eq!(exported["dest"], path_str(&dest));
    assert_eq!(
        exported["bytes"],
        fs::metadata(dest.join("SKILL.md")).unwrap().len()
    );
    let removed = sandbox
        .ok(&["rm", "scripted:1", "scripted:stable", "--json"])
        .json();
    assert_eq!(removed[0]["reference"], "scripted:1");
    assert_eq!(removed[0]["blobsDeleted"], 0, "still named scripted:stable");
    assert_eq!(removed[1]["reference"], "scripted:stable");
    assert!(
        removed[1]["blobsDeleted"].as_u64().unwrap() > 0,
        "{removed}"
    );
}

/// Short digests and prefixes, as `images` shows them, stand for an image wherever the store
/// takes a reference; a name that reads like a prefix still means the name.
#[test]
fn short_digests_and_prefixes_name_store_images() {
    let sandbox = Sandbox::new();
    let dir = common::write_minimal_skill(sandbox.path(), "short");
    let digest = sandbox.build(&dir, "short:1");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let shown = &hex[..12];
    assert_eq!(sandbox.inspect(shown)["reference"], "short:1");
    assert_eq!(
        sandbox.inspect(&format!("sha256:{}", &hex[..8]))["reference"],
        "short:1"
    );
    sandbox.ok(&["tag", &hex[..6], "short:again"]);
    let dest = sandbox.join("out");
    sandbox.ok(&["export", shown, path_str(&dest)]);
    assert!(dest.join("SKILL.md").is_file());
    // A name that reads like a prefix is the name.
    let named_dir = common::write_minimal_skill(sandbox.path(), "beef");
    let named = sandbox.build(&named_dir, "beef:latest");
    assert_eq!(sandbox.inspect("beef")["digest"], named.as_str());
    // Too short to be a prefix: a name, and no such image.
    sandbox.run(&["inspect", &hex[..3]]).failure();
    let removed = sandbox.ok(&["rm", shown]);
    assert!(removed.stdout.contains("removed short:"), "{removed}");
}

/// `manifest` prints the top document exactly as stored (it hashes to the image's digest);
/// `config` prints the picked manifest's config.
#[test]
fn manifest_and_config_print_the_stored_documents_as_they_are() {
    let sandbox = Sandbox::new();
    let dir = common::write_minimal_skill(sandbox.path(), "rawest");
    let digest = sandbox.build(&dir, "rawest:1");
    let manifest = sandbox.ok(&["manifest", "rawest:1"]);
    let saved = sandbox.join("manifest.json");
    fs::write(&saved, manifest.stdout.as_bytes()).unwrap();
    let sum = &common::sha256_files(std::slice::from_ref(&saved))[0];
    assert_eq!(format!("sha256:{sum}"), digest, "printed as stored");
    let index: Value = manifest.json();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let config = sandbox.ok(&["config", "rawest:1"]).json();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert!(config["rootfs"]["diff_ids"].is_array(), "{config}");
}
